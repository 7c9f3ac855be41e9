import urllib.error

import pytest
import torch
import torchvision

from readnet import models
from readnet.models import (
    CameraDiscriminator,
    CrossModalReIDNet,
    MnistNet,
    PretrainedWeightsWarning,
    ReIDNet,
    build_model,
    common_space_bn,
    resnet_backbone,
)


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch hub cache and a download that fails as on a machine without network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)


def test_reid_bnneck_output_shapes_and_last_stride():
    torch.manual_seed(0)
    model = ReIDNet(num_classes=5, neck="bnneck", last_stride=1, pretrained=False)
    images = torch.randn(2, 3, 128, 64)
    out = model(images)
    assert out.global_feature.shape == out.triplet_feature.shape == out.feature.shape == (2, 2048)
    assert out.logits.shape == (2, 5)
    # strong baseline: triplet on the pre-BN feature, test on the post-BN one
    assert torch.equal(out.triplet_feature, out.global_feature)
    assert not torch.allclose(out.feature, out.global_feature)
    with torch.no_grad():
        stride1 = model.backbone(images).shape
        models._set_last_stride(model.backbone, 2)
        stride2 = model.backbone(images).shape
    assert stride1 == (2, 2048, 8, 4)
    assert stride2 == (2, 2048, 4, 2)


def test_last_stride_must_be_1_or_2():
    with pytest.raises(ValueError, match="last_stride"):
        resnet_backbone(last_stride=3, pretrained=False)


def test_plain_neck_is_the_gap_feature_and_csbn_feeds_the_triplet_loss():
    plain = ReIDNet(pretrained=False)
    csbn = ReIDNet(num_classes=3, neck="csbn", pretrained=False)
    # Replace the trunks by a cheap stand-in: only the heads are under test here.
    plain.backbone = torch.nn.Conv2d(3, 2048, 1)
    csbn.backbone = torch.nn.Conv2d(3, 2048, 1)
    images = torch.randn(4, 3, 8, 4)
    out = plain(images)
    assert out.logits is None and out.feature.shape == (4, 2048)
    assert torch.equal(out.feature, out.triplet_feature)
    out = csbn(images)
    assert torch.equal(out.triplet_feature, out.feature)
    assert not torch.allclose(out.triplet_feature, out.global_feature)


def test_bnneck_bias_frozen_and_not_updated_by_an_optimizer_step():
    bn = common_space_bn(8)
    assert not bn.bias.requires_grad and torch.count_nonzero(bn.bias) == 0
    optimizer = torch.optim.Adam(bn.parameters(), lr=0.1, weight_decay=5e-4)
    weight_before = bn.weight.detach().clone()
    (bn(torch.randn(6, 8)) * torch.randn(6, 8)).sum().backward()
    optimizer.step()
    assert torch.count_nonzero(bn.bias) == 0
    assert not torch.equal(bn.weight, weight_before)


def test_camera_discriminator_structure():
    default = CameraDiscriminator(num_cameras=6)
    kinds = [type(m) for m in default.layers]
    assert kinds == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Dropout, torch.nn.Linear]
    assert (default.layers[0].in_features, default.layers[0].out_features) == (2048, 256)
    assert (default.layers[3].in_features, default.layers[3].out_features) == (256, 6)
    default.eval()
    assert default(torch.randn(3, 2048)).shape == (3, 6)
    literal = CameraDiscriminator(num_cameras=6, activation_after_output=True).eval()
    assert [type(m) for m in literal.layers][-2:] == [torch.nn.ReLU, torch.nn.Dropout]
    assert (literal(torch.randn(16, 2048)) >= 0).all()
    with pytest.raises(ValueError, match="num_cameras"):
        CameraDiscriminator(num_cameras=1)


def test_gradient_reversal_is_identity_forward_and_scaled_negation_backward():
    x = torch.randn(3, 4, requires_grad=True)
    weights = torch.randn(3, 4)
    y = models.reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    (y * weights).sum().backward()
    assert torch.allclose(x.grad, -0.5 * weights)


def test_user_pth_loads_torchvision_keys_with_fc(tmp_path):
    reference = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    backbone, info = resnet_backbone(last_stride=1, pretrained=path)
    assert info.source == f"path:{path}" and info.pretrained and info.warning is None
    loaded = backbone.state_dict()
    for key, value in reference.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key


def test_non_matching_pth_names_the_file(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="resnet18.pth"):
        resnet_backbone(pretrained=path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        resnet_backbone(pretrained=garbage)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        resnet_backbone(pretrained=tmp_path / "missing.pth")


def test_offline_pretrained_warns_and_records_random_init(offline):
    with pytest.warns(PretrainedWeightsWarning, match="random initialisation"):
        model = build_model("reid", num_classes=4, pretrained=True)
    assert model.pretrained_info.source == "random"
    assert not model.pretrained_info.pretrained
    assert "Name or service not known" in model.pretrained_info.warning


def test_imagenet_weights_come_from_the_hub_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.resnet50(weights=None)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / "resnet50-0676ba61.pth")
    backbone, info = resnet_backbone(pretrained=True)
    assert info.source == "imagenet"
    assert torch.equal(backbone.conv1.weight, reference.conv1.weight)


def test_cross_modal_model_uses_one_embedder_per_modality():
    model = CrossModalReIDNet(num_classes=7, pretrained=False)
    model.backbone = torch.nn.Conv2d(3, 2048, 1)
    with torch.no_grad():
        model.embedders.embedders["ir"].weight.fill_(2.0)
    images = torch.randn(4, 3, 8, 4)
    rgb, ir = model(images, "rgb"), model(images, "ir")
    assert rgb.logits.shape == (4, 7)
    assert torch.allclose(ir.feature, 2 * rgb.feature, atol=1e-5)
    mixed = model(torch.cat([images, images]), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    assert torch.allclose(mixed.feature[:4], rgb.feature, atol=1e-5)
    assert torch.allclose(mixed.feature[4:], ir.feature, atol=1e-5)
    with pytest.raises(ValueError, match="modality"):
        model(images, "thermal")


def test_mnist_net_shapes_and_a_gradient_step():
    torch.manual_seed(0)
    model = MnistNet(embedding_dim=2)
    assert model.net.conv1.in_channels == 1 and model.net.conv1.stride == (1, 1)
    images = torch.randn(8, 1, 28, 28)
    embedding = model(images)
    assert embedding.shape == (8, 2)
    # no ReLU on the embedding: a negative FC bias comes through unclamped
    bias = model.net.fc.bias.detach().clone()
    with torch.no_grad():
        model.net.fc.bias.fill_(-100.0)
        assert (model(images) < 0).all()
        model.net.fc.bias.copy_(bias)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    target = torch.randn(8, 2)
    loss_before = torch.nn.functional.mse_loss(embedding, target)
    loss_before.backward()
    optimizer.step()
    assert torch.nn.functional.mse_loss(model(images), target) < loss_before
    assert MnistNet(embedding_dim=8)(images[:2]).shape == (2, 8)


def test_mnist_net_stem_stride_halves_the_layer1_map():
    images = torch.randn(2, 1, 28, 28)
    for stride, pool, size in ((1, False, 28), (2, False, 14), (2, True, 7)):
        net = MnistNet(stem_stride=stride, stem_pool=pool).net
        stem = net.relu(net.bn1(net.conv1(images)))
        assert net.layer1(net.maxpool(stem)).shape[-1] == size
    assert MnistNet(stem_stride=2, stem_pool=True)(images).shape == (2, 2)
    assert MnistNet(stem_stride=2)(images).shape == (2, 2)
    with pytest.raises(ValueError, match="stem_stride"):
        MnistNet(stem_stride=4)


@pytest.mark.parametrize("name, channels", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
@pytest.mark.parametrize("last_stride", [1, 2])
def test_smaller_backbones_keep_last_stride_and_feed_the_discriminator(name, channels, last_stride):
    backbone, info = resnet_backbone(last_stride, pretrained=False, name=name)
    assert backbone.out_channels == channels and not info.pretrained
    assert backbone(torch.randn(1, 3, 64, 32)).shape[-2:] == ((4, 2) if last_stride == 1 else (2, 1))
    model = build_model("reid", pretrained=False, backbone=name).eval()
    assert model.feature_dim == channels
    assert CameraDiscriminator(6, in_dim=model.feature_dim)(model(torch.randn(2, 3, 64, 32)).global_feature).shape == (2, 6)
    with pytest.raises(ValueError, match="backbone"):
        resnet_backbone(pretrained=False, name="vgg16")


def test_build_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="arch"):
        build_model("vgg")
    with pytest.raises(ValueError, match="neck"):
        build_model("reid", neck="bn", pretrained=False)
    assert isinstance(build_model("mnist"), MnistNet)

"""The training engine on generated data, on the CPU: every preset learns, Algorithm 1 alternates,
resume is bit-exact, foreign checkpoints are refused and a NaN loss stops the run cleanly."""
import math
from dataclasses import replace

import pytest
import torch

import readnet.engine
from readnet import augment, losses, mnist, models, runs, train

from readnet.config import Method
from readnet.engine import NonFiniteLossError, build_engine, discriminator_step, extractor_step, iterate_batches, train_step
from readnet.data.synthetic import make_dataset
from readnet.presets import PRESETS, preset, resolve

DATASET_OF = {"expat_cross_modal": "sysu_mm01", "expat_regdb": "regdb"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for layout in ("market1501", "dukemtmc", "sysu_mm01", "regdb"):
        make_dataset(layout, root, size="tiny", height=64, width=32)
    return root


def tiny(name, root, **overrides):
    """A preset at test scale: the real ResNet-50, 32x16 inputs, P=4 x K=2, random init."""
    values = dict(data_root=str(root), p=4, k=2, height=32, width=16, pretrained=False, num_workers=0,
                  progress=False, eval_batch_size=64, eval_trials=2)
    return resolve(preset(name, **{**values, **overrides}))


def first_batch(engine, dataset):
    return next(iterate_batches(engine, dataset, epoch=0, stop=1))


def parameters(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def same(before, module):
    return all(torch.equal(before[name], p) for name, p in module.named_parameters())


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_loss_goes_down_on_a_fixed_batch(name, data_root):
    # A randomly initialised ResNet-50 is so sensitive that Adam's first steps at the papers' lr (every
    # weight moves by ~lr) overshoot on one small batch; at lr 1e-6 descent is monotone, warm-up aside.
    config = tiny(name, data_root, lr=1e-6, warmup_steps=0)
    dataset = train.load_dataset(config)
    engine = build_engine(config, dataset)
    batch = first_batch(engine, dataset)
    totals = []
    for iteration in range(4 if engine.method.camera_adversary else 3):
        values = train_step(engine, batch, iteration)
        if "total" in values:
            totals.append(values["total"])
    assert len(totals) >= 2
    assert totals[-1] < totals[0], totals


def test_algorithm_1_alternation_moves_only_the_network_being_trained(data_root):
    config = tiny("acn", data_root)
    dataset = train.load_dataset(config)
    engine = build_engine(config, dataset)
    batch = first_batch(engine, dataset)
    f_before, d_before = parameters(engine.model), parameters(engine.discriminator)

    values = discriminator_step(engine, batch, iteration=0)
    assert set(values) == {"camera_discriminator"}
    assert same(f_before, engine.model), "F moved during D's step"
    assert not same(d_before, engine.discriminator), "D did not move in its own step"

    d_after_its_step = parameters(engine.discriminator)
    values = extractor_step(engine, batch, iteration=1)
    assert {"metric", "camera_extractor", "total"} <= set(values)
    assert same(d_after_its_step, engine.discriminator), "D moved during F's step"
    assert not same(f_before, engine.model), "F did not move in its own step"
    assert all(p.requires_grad for p in engine.discriminator.parameters())


def test_gradient_reversal_moves_f_and_d_in_one_step(data_root):
    config = tiny("acn", data_root, adversary_objective="gradient_reversal")
    dataset = train.load_dataset(config)
    engine = build_engine(config, dataset)
    f_before, d_before = parameters(engine.model), parameters(engine.discriminator)
    values = train_step(engine, first_batch(engine, dataset), iteration=0)
    assert {"metric", "camera_discriminator", "camera_extractor", "total"} <= set(values)
    assert not same(f_before, engine.model) and not same(d_before, engine.discriminator)


def test_gradient_reversal_gives_f_the_maximize_gradient_and_d_the_descent_one(data_root):
    grads = {}
    for objective in ("maximize", "gradient_reversal"):
        config = tiny("acn", data_root, adversary_objective=objective, w2=0.5, discriminator_dropout=0.0)
        dataset = train.load_dataset(config)
        engine = build_engine(config, dataset)
        engine.model.eval()  # batch-norm statistics aside, both objectives see the same forward
        batch = first_batch(engine, dataset)
        features = engine.model(batch.images).global_feature
        loss, _ = readnet.engine._adversary_loss(engine, features, batch.camids)
        loss.backward()
        grads[objective] = ([p.grad.clone() for p in engine.model.parameters() if p.grad is not None],
                            [p.grad for p in engine.discriminator.parameters()])
    (f_max, d_max), (f_grl, d_grl) = grads["maximize"], grads["gradient_reversal"]
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(f_max, f_grl)) and len(f_max) == len(f_grl)
    assert all(g is None for g in d_max), "D is frozen under the paper's objective"
    assert all(g is not None and g.abs().sum() > 0 for g in d_grl)


@pytest.mark.parametrize("objective", ["maximize", "gradient_reversal", "confusion"])
def test_each_adversary_objective_trains_with_finite_losses(objective, data_root, tmp_path):
    config = tiny("acn", data_root, adversary_objective=objective, w2=1.0, max_iterations=4)
    run_dir = train.train(config, tmp_path / objective)
    records = runs.read_metrics(run_dir)
    logged = {key for record in records for key in record if key.startswith("loss/")}
    assert {"loss/metric", "loss/camera_extractor", "loss/total"} <= logged
    assert ("loss/camera_confusion" in logged) == (objective == "confusion")
    assert all(math.isfinite(record[key]) for record in records for key in logged if key in record)
    assert math.isfinite(runs.load_run(run_dir).final_metrics["mAP"])


def test_gradient_reversal_refuses_algorithm_1_step_settings(data_root):
    for settings in ({"discriminator_steps": 2}, {"adversary_batches": "shared"}):
        with pytest.raises(ValueError, match="gradient_reversal"):
            tiny("acn", data_root, adversary_objective="gradient_reversal", **settings)
    with pytest.raises(ValueError, match="adversary_objective='minimize' is not valid"):
        tiny("acn", data_root, adversary_objective="minimize")


@pytest.mark.parametrize("k, adversary_batches, expected", [
    (1, "separate", ["D", "F", "D", "F"]),
    (2, "separate", ["D", "D", "F", "D"]),
    (2, "shared", ["DF", "DF", "DF", "DF"]),
])
def test_algorithm_1_schedule_of_steps(k, adversary_batches, expected, data_root, monkeypatch):
    config = tiny("atl_acn", data_root, discriminator_steps=k, adversary_batches=adversary_batches)
    dataset = train.load_dataset(config)
    engine = build_engine(config, dataset)
    calls = []
    monkeypatch.setattr(readnet.engine, "_forward", lambda *a, **kw: models.ReIDOutput(*[None] * 3))
    monkeypatch.setattr(readnet.engine, "discriminator_step", lambda *a, **kw: calls.append("D") or {})
    monkeypatch.setattr(readnet.engine, "extractor_step", lambda *a, **kw: calls.append("F") or {})
    batch = first_batch(engine, dataset)
    steps = []
    for iteration in range(4):
        calls.clear()
        train_step(engine, batch, iteration)
        steps.append("".join(sorted(set(calls), key=calls.index)))
    assert steps == expected
    if adversary_batches == "shared":
        assert calls == ["D"] * k + ["F"]


def _checkpoint(run_dir):
    return runs.load_checkpoint(run_dir / runs.LAST_CHECKPOINT)


def test_resume_is_bit_exact_mid_epoch_and_at_epoch_ends(data_root, tmp_path):
    # ACN with padding and erasing draws on every RNG the engine checkpoints (D's dropout, augmentation);
    # 12 training ids at P=4 give 3 batches per epoch, so 1 stops inside epoch 0 and 3 at its end.
    config = tiny("acn", data_root, pad=2, random_erasing=0.5, max_iterations=4)
    whole = train.train(config, tmp_path / "whole")
    parts = train.train(replace(config, max_iterations=1), tmp_path / "parts")
    assert _checkpoint(parts)["iteration_in_epoch"] == 1
    train.resume(parts, max_iterations=3)
    assert _checkpoint(parts)["iteration_in_epoch"] == 0 and _checkpoint(parts)["epoch"] == 1
    train.resume(parts, max_iterations=4)

    a, b = _checkpoint(whole), _checkpoint(parts)
    for part in ("model", "discriminator"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    for key, value in a["optimizers"]["extractor"]["state"].items():
        assert torch.equal(value["exp_avg"], b["optimizers"]["extractor"]["state"][key]["exp_avg"])
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    losses_a = [{k: v for k, v in r.items() if k != "seconds"} for r in runs.read_metrics(whole)]
    losses_b = [{k: v for k, v in r.items() if k != "seconds"} for r in runs.read_metrics(parts)]
    assert losses_a == losses_b and len(losses_a) == 2 and losses_a[-1]["partial"]  # epoch 2 stopped after 1 step
    final_a = runs.read_json(whole / runs.FINAL_METRICS_FILE)
    assert final_a == runs.read_json(parts / runs.FINAL_METRICS_FILE)
    assert len(runs.read_json(parts / runs.ENVIRONMENT_FILE)["resumes"]) == 2
    assert train.test(whole) == {k: v for k, v in final_a.items()
                                 if k.startswith(("mAP", "mINP", "rank", "cmc", "chance"))}


def test_evaluations_during_training_record_scalars(data_root, tmp_path):
    run_dir = train.train(tiny("atl", data_root, epochs=2, eval_every=1), tmp_path / "run")
    records = runs.read_metrics(run_dir)
    assert len(records) == 2 and 0.0 <= records[0]["eval/mAP"] <= 100.0
    assert all(isinstance(value, (int, float)) for record in records for value in record.values())


def test_sysu_mm01_records_name_their_cmc_convention(data_root, tmp_path):
    # Rank-5/10/20 differ between SYSU-MM01's two CMC conventions: the records and the final metrics
    # say which one they hold (TensorBoard gets the numbers only).
    config = tiny("expat_cross_modal", data_root, epochs=2, max_iterations=None, eval_every=1, backbone="resnet18",
                  eval_trials=1)
    run_dir = train.train(config, tmp_path / "run")
    (record, _) = runs.read_metrics(run_dir)
    assert record["eval/cmc_convention"] == "standard" and 0.0 <= record["eval/mINP"] <= 100.0
    final = runs.read_json(run_dir / runs.FINAL_METRICS_FILE)
    assert final["cmc_convention"] == "standard"
    assert all(0.0 <= setting["mINP"] <= 100.0 for setting in final["settings"].values())


def test_a_checkpoint_from_elsewhere_is_refused(tmp_path, data_root):
    torchvision_weights = tmp_path / "resnet.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), torchvision_weights)
    random_bytes = tmp_path / "noise.pt"
    random_bytes.write_bytes(bytes(range(256)) * 4)
    other_version = tmp_path / "future.pt"
    torch.save({"format": runs.CHECKPOINT_FORMAT, "format_version": 99}, other_version)
    pickled_object = tmp_path / "object.pt"
    torch.save({"format": runs.CHECKPOINT_FORMAT, "config": object.__new__(Method)}, pickled_object)
    for path, reason in ((torchvision_weights, "no format"), (random_bytes, "weights_only"),
                         (other_version, "format version 99"), (pickled_object, "weights_only")):
        with pytest.raises(runs.CheckpointError, match=reason) as error:
            runs.load_checkpoint(path)
        assert str(path) in str(error.value)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / runs.CONFIG_FILE).write_text("{}")
    torchvision_weights.rename(run_dir / runs.LAST_CHECKPOINT)
    with pytest.raises(runs.CheckpointError, match="not a readnet checkpoint"):
        train.resume(run_dir)


def test_a_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(data_root, tmp_path, monkeypatch):
    original, calls = losses.original_triplet, []

    def poisoned(*args, **kwargs):
        calls.append(1)
        loss = original(*args, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(losses, "original_triplet", poisoned)
    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="metric loss is nan at iteration 2") as error:
        train.train(tiny("basel", data_root, max_iterations=3, checkpoint_every=2), run_dir)
    assert error.value.iteration == 2
    checkpoint = runs.load_checkpoint(run_dir / runs.LAST_CHECKPOINT)
    assert checkpoint["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point())
    assert not (run_dir / runs.FINAL_METRICS_FILE).exists()
    monkeypatch.setattr(losses, "original_triplet", original)
    train.resume(run_dir)
    assert runs.read_json(run_dir / runs.FINAL_METRICS_FILE)["iteration"] == 3


def test_augmentation_is_flip_only_for_readnet_and_reproducible():
    images = torch.arange(2 * 3 * 4 * 2, dtype=torch.float32).reshape(2, 3, 4, 2)
    config = PRESETS["basel"]
    out = augment.augment(images, config, torch.Generator().manual_seed(0))
    for original, augmented in zip(images, out):
        assert torch.equal(augmented, original) or torch.equal(augmented, original.flip(-1))
    again = augment.augment(images, config, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    strong = augment.augment(images, replace(config, pad=1, random_erasing=1.0), torch.Generator().manual_seed(0))
    assert strong.shape == images.shape and not torch.equal(strong, out)


def test_mnist_fallback_trains_a_2d_embedding():
    config = mnist.MnistConfig(loss="angular", epochs=1, max_train_images=40, max_test_images=10, batch_size=20,
                               max_triplets=500, progress=False)
    data = mnist.load_mnist_data(config)
    assert data.source.startswith("scikit-learn digits") and data.train_images.shape[1:] == (1, 28, 28)
    model, history = mnist.train_mnist(config, data)
    assert len(history["loss"]) == 1 and history["data_source"] == data.source and history["margin"] == 0.08
    assert mnist.embed_mnist(model, data.test_images).shape == (10, 2)


def test_mnist_reads_the_real_subset(shared_mnist):
    config = mnist.MnistConfig(data_root=str(shared_mnist), max_train_images=100, max_test_images=20)
    data = mnist.load_mnist_data(config)
    assert data.source.startswith("MNIST subset") and len(data.train_labels) == 100
    assert set(data.train_labels.tolist()) == set(range(10))


def test_recalibrated_batchnorm_holds_the_final_weights_statistics():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    images = torch.randn(40, 1, 4, 4) * 3 + 5
    mnist.recalibrate_batchnorm(model, images, batch_size=10, device=torch.device("cpu"))
    conv_out = model[0](images)
    norm = model[1]
    assert torch.allclose(norm.running_mean, conv_out.mean(dim=(0, 2, 3)), atol=1e-5)
    assert norm.momentum == 0.1 and not model.training


def test_smaller_backbone_option_reaches_the_model_and_discriminator(data_root):
    config = tiny("acn", data_root, backbone="resnet18")
    dataset = train.load_dataset(config)
    engine = build_engine(config, dataset)
    assert engine.model.feature_dim == 512
    assert train_step(engine, first_batch(engine, dataset), 0)
    with pytest.raises(ValueError, match="backbone"):
        tiny("basel", data_root, backbone="vgg16")


@pytest.mark.parametrize("literal", [False, True])
def test_the_discriminator_reading_of_section_4_2_is_a_config_field(literal, data_root):
    """§4.2's "ReLU and Dropout after each layer": after the first FC only (default) or literally."""
    config = tiny("acn", data_root, discriminator_activation_after_output=literal)
    engine = build_engine(config, train.load_dataset(config))
    last = list(engine.discriminator.modules())[-1]
    assert isinstance(last, torch.nn.Dropout) == literal


def test_flip_averaging_at_test_time_is_the_mean_of_both_views(data_root):
    from readnet.data import build_transform, read_image
    from readnet.inference import extract_features
    config = tiny("basel", data_root)
    dataset = train.load_dataset(config)
    model = build_engine(config, dataset, for_training=False).model.eval()
    records = dataset.query[:6]
    plain, _, _ = extract_features(model, records, config)
    both, _, _ = extract_features(model, records, replace(config, test_flip=True))
    transform = build_transform(config.height, config.width, train=False)
    with torch.no_grad():
        flipped = model(torch.stack([transform(read_image(r.path)) for r in records]).flip(-1)).feature
    torch.testing.assert_close(both, (plain + flipped) / 2, rtol=1e-5, atol=1e-5)

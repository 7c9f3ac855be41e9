"""The fast path on the CPU: device augmentation, sync-free mining and losses, deferred NaN checks,
and training equivalent to the plain path from the same seed."""
from dataclasses import replace

import pytest
import torch

from readnet import augment, inference, losses, mining, runs, train

from readnet.config import METHODS, RESUMABLE_OVERRIDES, fast_path_enabled
from readnet.engine import LossLog, NonFiniteLossError, build_engine, compile_model, iterate_batches, train_step
from readnet.presets import PRESETS, preset, resolve


def tiny(name, root, **overrides):
    values = dict(data_root=str(root), p=4, k=2, height=32, width=16, pretrained=False, num_workers=0,
                  progress=False, eval_batch_size=64, channels_last=False)
    return resolve(preset(name, **{**values, **overrides}))


def first_losses(config, steps=3):
    """The loss terms of the first `steps` steps, as floats."""
    dataset = train.load_dataset(config)
    engine = build_engine(config, dataset)
    out = []
    for iteration, batch in enumerate(iterate_batches(engine, dataset, epoch=0, stop=steps)):
        out.append({k: float(v) for k, v in train_step(engine, batch, iteration).items()})
    return engine, out


@pytest.mark.parametrize("name", [name for name, config in PRESETS.items() if not METHODS[config.method].cross_modal])
def test_plain_and_fast_paths_augment_bit_identically_from_the_same_seed(name, market_root):
    """One augmentation for both batch sources: the DataLoader (plain) and the device cache (fast)
    give the same augmented batches, pad/crop and erasing included, on the CPU."""
    config = resolve(preset(name, dataset="market1501", data_root=str(market_root), backbone="resnet18", p=4, k=2,
                            pretrained=False, num_workers=0, progress=False))
    dataset = train.load_dataset(config)
    plain = build_engine(replace(config, fast_path=False), dataset)
    fast = build_engine(replace(config, fast_path=True), dataset)
    assert fast.images is not None and plain.images is None
    for a, b in zip(iterate_batches(plain, dataset, epoch=0, stop=2), iterate_batches(fast, dataset, epoch=0, stop=2)):
        assert torch.equal(a.images, b.images) and torch.equal(a.pids, b.pids) and torch.equal(a.camids, b.camids)


def test_pad_crop_and_random_erasing_on_the_device():
    images = torch.randn(64, 3, 16, 8)
    config = replace(PRESETS["expat"], flip_probability=0.0, height=16, width=8, pad=2, random_erasing=1.0)
    out = augment.augment(images, config, torch.Generator().manual_seed(0))
    again = augment.augment(images, config, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and torch.equal(out, again)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    erased = (out == mean).all(1)  # the fill value in all three channels
    fractions = erased.flatten(1).float().mean(1)
    assert (fractions > 0).float().mean() > 0.9 and fractions.max() <= 0.5
    crops = augment.augment(images, replace(config, random_erasing=0.0), torch.Generator().manual_seed(1))
    black = torch.tensor([-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])[:, None, None]
    canvas = black.expand(64, 3, 20, 12).clone()
    canvas[:, :, 2:18, 2:10] = images
    for crop, padded in zip(crops, canvas):  # each crop is one 16x8 window of the padded image
        windows = padded.unfold(1, 16, 1).unfold(2, 8, 1).permute(1, 2, 0, 3, 4).reshape(-1, 3, 16, 8)
        assert any(torch.equal(crop, window) for window in windows)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "angular"])
def test_sync_free_mining_and_cross_entropy_match_the_checked_ones(metric):
    generator = torch.Generator().manual_seed(0)
    features, labels = torch.randn(12, 5, generator=generator), torch.arange(4).repeat_interleave(3)
    for fast, checked in zip(mining.batch_hard(features, labels, metric, validate=False),
                             mining.batch_hard(features, labels, metric)):
        assert torch.equal(fast, checked)
    other = torch.randn(12, 5, generator=generator)
    for fast, checked in zip(mining.cross_modal_batch_hard(features, labels, other, labels, metric, validate=False),
                             mining.cross_modal_batch_hard(features, labels, other, labels, metric)):
        assert torch.equal(fast, checked)
    logits = torch.randn(12, 6, generator=generator)
    smoothed = torch.nn.functional.one_hot(labels, 6).double() * 0.9 + 0.1 / 6  # eq. 12's y^LS
    reference = -(smoothed * torch.log_softmax(logits.double(), dim=1)).sum(1).mean()
    for validate in (True, False):
        torch.testing.assert_close(losses.label_smoothing_cross_entropy(logits, labels, 0.1, validate=validate).double(),
                                   reference, rtol=1e-6, atol=1e-7)


def test_loss_log_sums_like_the_host_and_finds_the_first_bad_iteration():
    state = {"sums": {"total": 1.5}, "counts": {"total": 1}}
    log = LossLog(state)
    values = [torch.tensor(0.1), torch.tensor(0.7), torch.tensor(float("inf")), torch.tensor(float("nan"))]
    for iteration, value in enumerate(values[:2], start=1):
        log.add({"total": value}, iteration)
    assert log.flush() is None
    assert state["sums"]["total"] == 1.5 + float(values[0]) + float(values[1]) and state["counts"]["total"] == 3
    for iteration, value in enumerate(values[2:], start=3):
        log.add({"total": value}, iteration)
    assert log.flush()[:2] == (3, "total")


def test_fast_path_trains_like_the_plain_path_from_the_same_seed(market_root):
    # Same batches, same flips, inputs equal bit for bit: without bf16 the losses agree to float rounding
    # (the camera terms use torch's fused label-smoothing cross-entropy, the rest is the same arithmetic).
    config = tiny("acn", market_root, lr=1e-5, adversary_batches="shared")
    plain_engine, plain = first_losses(replace(config, fast_path=False))
    fast_engine, fast = first_losses(replace(config, fast_path=True, amp=False))
    assert fast_engine.fast and fast_engine.images is not None and not plain_engine.fast
    for a, b in zip(plain, fast):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-5), key


def test_fast_path_with_bf16_stays_within_bf16_tolerance(market_root):
    # bf16 keeps 8 mantissa bits. The camera cross-entropies stay within 1% at every step. The batch-hard
    # L_ori of a randomly initialised ResNet-50 is a difference of two distances several times its size,
    # so its bf16 error is a few percent at the first step (same weights, same batch); later steps add the
    # divergence of two trainings of a chaotic random network, which says nothing about the fast path.
    config = tiny("acn", market_root, lr=1e-5, adversary_batches="shared", height=64, width=32, k=4)
    _, plain = first_losses(replace(config, fast_path=False))
    _, bf16 = first_losses(replace(config, fast_path=True, amp=True))
    assert bf16[0]["metric"] == pytest.approx(plain[0]["metric"], rel=0.05)
    for a, b in zip(plain, bf16):
        for key in ("camera_discriminator", "camera_extractor"):
            assert b[key] == pytest.approx(a[key], rel=0.01), key


def test_fast_path_with_channels_last_and_the_loader_instead_of_the_cache(market_root):
    config = tiny("basel", market_root, fast_path=True, channels_last=True, device_cache=False, amp=False)
    engine, values = first_losses(config, steps=2)
    assert engine.images is None
    assert engine.model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(torch.tensor(v["total"])) for v in values)


def test_fast_path_run_resumes_bit_exactly_on_the_cpu_and_evaluates_like_the_plain_path(market_root, tmp_path):
    config = tiny("basel", market_root, fast_path=True, amp=False, max_iterations=4, log_every=2)
    whole = train.train(config, tmp_path / "whole")
    parts = train.train(replace(config, max_iterations=2), tmp_path / "parts")
    train.resume(parts, max_iterations=4)
    a = runs.load_checkpoint(whole / runs.LAST_CHECKPOINT)["model"]
    b = runs.load_checkpoint(parts / runs.LAST_CHECKPOINT)["model"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert runs.read_json(whole / runs.ENVIRONMENT_FILE)["fast_path"] is True
    on_device = runs.read_json(whole / runs.FINAL_METRICS_FILE)  # features from the cached test images
    assert train.test(whole) == {k: v for k, v in on_device.items()
                                 if k.startswith(("mAP", "mINP", "rank", "cmc", "chance"))}
    loaded, loaded_config, dataset = train.load_checkpoint_model(whole / runs.LAST_CHECKPOINT)
    plain = inference.evaluate_model(loaded, dataset, replace(loaded_config, fast_path=False))  # DataLoader, PIL
    for key, value in plain.items():
        assert on_device[key] == pytest.approx(value, abs=1e-6), key


def test_fast_path_nan_is_found_at_the_next_log_point_and_the_last_good_checkpoint_is_kept(market_root, tmp_path,
                                                                                           monkeypatch):
    original, calls = losses.original_triplet, []

    def poisoned(*args, **kwargs):
        calls.append(1)
        loss = original(*args, **kwargs)
        return loss * float("nan") if len(calls) == 4 else loss

    monkeypatch.setattr(losses, "original_triplet", poisoned)
    run_dir = tmp_path / "run"
    config = tiny("basel", market_root, fast_path=True, amp=False, max_iterations=6, log_every=3, checkpoint_every=2)
    with pytest.raises(NonFiniteLossError, match="metric loss is nan at iteration 3.*log point after "
                                                       "iteration 3") as error:
        train.train(config, run_dir)
    assert error.value.iteration == 3
    assert runs.load_checkpoint(run_dir / runs.LAST_CHECKPOINT)["iteration"] == 2
    monkeypatch.setattr(losses, "original_triplet", original)
    train.resume(run_dir)
    assert runs.read_json(run_dir / runs.FINAL_METRICS_FILE)["iteration"] == 6


def test_fast_path_flags_are_validated_and_steer_resume_only():
    with pytest.raises(ValueError, match="log_every"):
        resolve(replace(PRESETS["basel"], log_every=0))
    with pytest.raises(ValueError, match="checkpoint_epochs"):
        resolve(replace(PRESETS["basel"], checkpoint_epochs=0))
    assert {"log_every", "compile", "cuda_graphs", "device_cache"} <= set(RESUMABLE_OVERRIDES)
    assert "fast_path" not in RESUMABLE_OVERRIDES
    with pytest.raises(ValueError, match="cuda_graphs"):
        compile_model(torch.nn.Linear(2, 2), replace(PRESETS["basel"], cuda_graphs=True),
                                torch.device("cpu"))
    assert not fast_path_enabled(PRESETS["basel"], torch.device("cpu"))
    assert fast_path_enabled(PRESETS["basel"], torch.device("cuda"))

"""Losses, distances and miners compute in float32 under autocast; CPU bf16 is refused where
oneDNN may use its AMX bf16 kernels (readnet.precision)."""
import copy
import functools
import json
import os
import subprocess
import sys
import types
from dataclasses import replace

import pytest
import torch

import readnet
from readnet import distances, losses, mining, precision
from readnet.config import amp_dtype
from readnet.engine import camera_loss
from readnet.presets import PRESETS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _features(n=8, d=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, d, generator=generator) for _ in range(3))


A, P, N = _features()
LABELS = torch.arange(4).repeat_interleave(2)
LOGITS = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
CENTERS = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
DISCRIMINATOR = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5)).eval()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def _on(tensor, like):
    return tensor.to(like.device)


@functools.cache
def _camera_engine(device):
    """What camera_loss reads of an engine, with D on `device`."""
    return types.SimpleNamespace(
        config=types.SimpleNamespace(normalize_camera_features=True, camera_label_smoothing=0.1),
        discriminator=copy.deepcopy(DISCRIMINATOR).to(device), sync_free=False)


# name -> a function of three [8, 6] float tensors (on one device) returning a tensor
COMPUTATIONS = {
    "euclidean_distance": lambda a, p, n: distances.euclidean_distance(a, p),
    "cosine_similarity": lambda a, p, n: distances.cosine_similarity(a, p),
    "angle": lambda a, p, n: distances.angle(a, p),
    "angle_from_cosine": lambda a, p, n: distances.angle_from_cosine(torch.tanh(a)),
    "feature_norm_regularizer": losses.feature_norm_regularizer,
    "original_triplet": functools.partial(losses.original_triplet, margin=0.3),
    "original_triplet_soft": functools.partial(losses.original_triplet, margin=None),
    "cosine_triplet": functools.partial(losses.cosine_triplet, margin=0.3),
    "arc_triplet": functools.partial(losses.arc_triplet, margin=0.3),
    "angular_triplet": functools.partial(losses.angular_triplet, margin=0.3),
    "exp_angular_paper": losses.exp_angular_triplet,
    "exp_angular_reference": functools.partial(losses.exp_angular_triplet, variant="reference"),
    "bidirectional_exp_angular": lambda a, p, n: losses.bidirectional_exp_angular_triplet(a, p, n, p, a, n),
    "center_loss": lambda a, p, n: losses.center_loss(a, _on(LABELS, a), _on(CENTERS, a)),
    "label_smoothing_cross_entropy": lambda a, p, n: losses.label_smoothing_cross_entropy(
        _on(LOGITS, a) + a[:, :5], _on(LABELS, a), 0.1),
    "label_smoothing_cross_entropy_unchecked": lambda a, p, n: losses.label_smoothing_cross_entropy(
        _on(LOGITS, a) + a[:, :5], _on(LABELS, a), 0.1, validate=False),
    "camera_loss": lambda a, p, n: camera_loss(_camera_engine(a.device.type), a, _on(LABELS, a)),
    **{f"paired_distance_{metric}": functools.partial(
        lambda a, p, n, metric: distances.paired_distance(a, p, metric), metric=metric)
       for metric in distances.METRICS},
    **{f"pairwise_distance_{metric}": functools.partial(
        lambda a, p, n, metric: distances.pairwise_distance(a, p, metric), metric=metric)
       for metric in distances.METRICS},
    **{f"chunked_pairwise_distance_{metric}": functools.partial(
        lambda a, p, n, metric: distances.chunked_pairwise_distance(a, p, metric, chunk_size=3), metric=metric)
       for metric in distances.METRICS},
}


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_is_live_in_these_tests(device):
    with torch.autocast(device, dtype=torch.bfloat16):
        assert (A.to(device) @ P.to(device).T).dtype == torch.bfloat16


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(COMPUTATIONS))
def test_float32_under_bf16_autocast(name, device):
    compute, (a, p, n) = COMPUTATIONS[name], (t.to(device) for t in (A, P, N))
    expected = compute(a, p, n)
    with torch.autocast(device, dtype=torch.bfloat16):
        actual = compute(a, p, n)
    assert expected.dtype == actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", ["angular_triplet", "exp_angular_paper", "pairwise_distance_angular"])
def test_bf16_inputs_are_upcast_and_get_their_gradient(name):
    a, p, n = (t.bfloat16().requires_grad_() for t in (A, P, N))
    value = COMPUTATIONS[name](a, p, n)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, COMPUTATIONS[name](a.float(), p.float(), n.float()), rtol=1e-6, atol=0)
    value.sum().backward()
    assert a.grad.dtype == torch.bfloat16 and torch.isfinite(a.grad.float()).all()


@pytest.mark.parametrize("metric", distances.METRICS)
def test_mining_under_cpu_bf16_autocast_picks_the_float32_triplets(metric):
    # Close features (a common offset): their distances differ below bf16's resolution.
    features = 3.0 + 0.05 * torch.cat([A, P])
    labels = torch.arange(8).repeat_interleave(2)
    other = 3.0 + 0.05 * N
    expected = mining.batch_hard(features, labels, metric)
    cross = mining.cross_modal_batch_hard(features[:8], LABELS, other, LABELS, metric)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for got, want in zip(mining.batch_hard(features, labels, metric), expected):
            assert torch.equal(got, want)
        for got, want in zip(mining.cross_modal_batch_hard(features[:8], LABELS, other, LABELS, metric), cross):
            assert torch.equal(got, want)


# --- CPU bf16 and oneDNN's AMX kernels --------------------------------------------------------------


def test_importing_readnet_pins_onednn_below_amx_before_torch():
    # A clean environment: the cap comes from readnet, set before torch is imported.
    env = {key: value for key, value in os.environ.items() if key not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    script = (
        "import importlib, json, os, sys\n"
        "import readnet\n"
        "out = {'env': os.environ.get('ONEDNN_MAX_CPU_ISA'), 'torch_loaded': 'torch' in sys.modules,\n"
        "       'late': readnet.TORCH_IMPORTED_BEFORE_PIN}\n"
        "from readnet import precision\n"
        "out['pinned'] = precision.isa_pinned()\n"
        "importlib.reload(readnet)  # as if torch had come first\n"
        "out['late_after_torch'] = readnet.TORCH_IMPORTED_BEFORE_PIN\n"
        "out['pinned_after_torch'] = precision.isa_pinned()\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                            check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "env": "AVX512_CORE_BF16", "torch_loaded": False, "late": False, "pinned": True,
        "late_after_torch": True, "pinned_after_torch": False}


def test_cpu_has_amx_reads_the_flags(tmp_path):
    amx, avx = tmp_path / "amx", tmp_path / "avx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx512_bf16 amx_bf16 amx_tile amx_int8\n")
    avx.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\nbugs\t\t: amx_bf16\n")
    assert precision.cpu_has_amx(amx) and not precision.cpu_has_amx(avx)
    assert not precision.cpu_has_amx(tmp_path / "missing")
    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert precision.cpu_has_native_bf16(amx) and precision.cpu_has_native_bf16(avx)
    assert not precision.cpu_has_native_bf16(plain) and not precision.cpu_has_native_bf16(tmp_path / "missing")


@pytest.fixture
def amx_cpu(monkeypatch):
    """A simulated AMX CPU in a process that started without ONEDNN_MAX_CPU_ISA."""
    monkeypatch.setattr(precision, "cpu_has_amx", lambda *args: True)
    monkeypatch.setattr(precision, "_startup_environment", lambda: {})
    return monkeypatch


CPU, CUDA = torch.device("cpu"), torch.device("cuda")
AMP = replace(PRESETS["basel"], amp=True)


def test_cpu_bf16_on_amx_after_torch_without_the_pin_is_refused(amx_cpu):
    amx_cpu.setattr(readnet, "TORCH_IMPORTED_BEFORE_PIN", True)
    assert not precision.cpu_bf16_is_safe()
    with pytest.raises(precision.UnsafeCPUBF16Error,
                       match="torch was imported before readnet.*Import readnet before torch, or set "
                             "ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 before starting Python, or set amp=false"):
        amp_dtype(AMP, CPU)
    assert issubclass(precision.UnsafeCPUBF16Error, ValueError)
    # Not requested, or not on the CPU: nothing to refuse.
    assert amp_dtype(replace(AMP, amp=None), CPU) is None
    assert amp_dtype(replace(AMP, amp=False), CPU) is None
    assert amp_dtype(replace(AMP, amp=None), CUDA) is torch.bfloat16
    # A user's value that allows AMX is refused too, even with readnet imported first.
    amx_cpu.setattr(readnet, "TORCH_IMPORTED_BEFORE_PIN", False)
    amx_cpu.setattr(readnet, "ONEDNN_ISA_AT_IMPORT", "AVX512_CORE_AMX")
    with pytest.raises(precision.UnsafeCPUBF16Error, match="ONEDNN_MAX_CPU_ISA=AVX512_CORE_AMX allows AMX"):
        amp_dtype(AMP, CPU)


def test_cpu_bf16_on_amx_with_the_pin_is_allowed(amx_cpu):
    amx_cpu.setattr(readnet, "TORCH_IMPORTED_BEFORE_PIN", False)
    amx_cpu.setattr(readnet, "ONEDNN_ISA_AT_IMPORT", "AVX512_CORE_BF16")
    assert amp_dtype(AMP, CPU) is torch.bfloat16
    # Set before Python started: allowed even when torch was imported before readnet.
    amx_cpu.setattr(readnet, "TORCH_IMPORTED_BEFORE_PIN", True)
    amx_cpu.setattr(precision, "_startup_environment", lambda: {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"})
    assert amp_dtype(AMP, CPU) is torch.bfloat16


def test_cpu_bf16_without_amx_is_allowed(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_amx", lambda *args: False)
    monkeypatch.setattr(readnet, "TORCH_IMPORTED_BEFORE_PIN", True)
    assert amp_dtype(AMP, CPU) is torch.bfloat16

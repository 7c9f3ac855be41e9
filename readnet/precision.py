"""Numerical precision: which computations run in float32 under autocast, and when CPU bf16 is safe.

Autocast runs matmuls and convolutions in bf16. Losses, distances and miners are small but
sensitive (a difference of two distances, arccos near +-1, an exponent, a softmax), so they are
decorated with :func:`float32` and always compute in float32 (float64 inputs stay float64).

CPU bf16 autocast goes through oneDNN, whose multi-threaded AMX-BF16 kernels (Intel Sapphire
Rapids and later) gave NaN or wrong ResNet-50 losses. ``import readnet`` caps oneDNN below AMX
(``ONEDNN_MAX_CPU_ISA``, see ``readnet/__init__.py``); that only binds if torch was not imported
first. :func:`require_safe_cpu_bf16` refuses CPU bf16 where the cap may be missing.
"""

from __future__ import annotations

import functools
import os
import pathlib
from typing import Callable, TypeVar

import torch
from torch import Tensor

import readnet

ISA_VARIABLE = readnet.ONEDNN_ISA_VARIABLE
ISA_PIN = readnet.ONEDNN_ISA_PIN

_Function = TypeVar("_Function", bound=Callable)


class UnsafeCPUBF16Error(ValueError):
    """CPU bf16 autocast was requested on an AMX CPU where oneDNN may still use its AMX kernels."""


# --- float32 islands under autocast --------------------------------------------------------------


def _upcast(value):
    if isinstance(value, Tensor) and value.is_floating_point() and torch.finfo(value.dtype).bits < 32:
        return value.float()
    return value


def _device_type(args, kwargs) -> str | None:
    """The device type of the first tensor argument ("cpu" when there is none), or None when
    autocast does not exist for it."""
    tensor = next((v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)), None)
    device_type = "cpu" if tensor is None else tensor.device.type
    return device_type if torch.amp.is_autocast_available(device_type) else None


def float32(function: _Function) -> _Function:
    """Decorator: run ``function`` with autocast off for its inputs' device type and its floating
    tensor arguments narrower than float32 (bf16, fp16) upcast to float32. Gradients flow back
    to the original tensors in their own dtype."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        device_type = _device_type(args, kwargs)
        args = tuple(_upcast(value) for value in args)
        kwargs = {name: _upcast(value) for name, value in kwargs.items()}
        if device_type is None:
            return function(*args, **kwargs)
        with torch.autocast(device_type, enabled=False):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --- CPU bf16 and oneDNN's AMX kernels -----------------------------------------------------------


def _cpu_flags(cpuinfo: str | os.PathLike) -> set[str]:
    """The flags /proc/cpuinfo lists (empty where it cannot be read)."""
    try:
        text = pathlib.Path(cpuinfo).read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") and ":" in line
            for flag in line.split(":", 1)[1].split()}


def cpu_has_amx(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether the CPU lists the ``amx_bf16`` flag (False where /proc/cpuinfo cannot be read)."""
    return "amx_bf16" in _cpu_flags(cpuinfo)


def cpu_has_native_bf16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes bf16 in hardware (the ``avx512_bf16`` or ``amx_bf16`` flag); elsewhere
    oneDNN emulates bf16, and autocast is slower than float32."""
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags(cpuinfo))


def _caps_below_amx(value: str | None) -> bool:
    """Whether an ONEDNN_MAX_CPU_ISA value keeps oneDNN off AMX (unset, DEFAULT/ALL or *AMX* do not)."""
    value = (value or "").strip().upper()
    return bool(value) and value not in ("DEFAULT", "ALL") and "AMX" not in value


def _startup_environment() -> dict[str, str]:
    """The environment this process started with (Linux: /proc/self/environ, which later
    changes to os.environ do not touch); empty where it cannot be read."""
    try:
        raw = pathlib.Path("/proc/self/environ").read_bytes()
    except OSError:
        return {}
    pairs = (entry.split(b"=", 1) for entry in raw.split(b"\0") if b"=" in entry)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def isa_pinned() -> bool:
    """Whether oneDNN is capped below AMX in this process: the cap was set before Python started,
    or ``import readnet`` found (or set) it before torch was imported."""
    startup = _startup_environment()
    if _caps_below_amx(startup.get(ISA_VARIABLE, startup.get("DNNL_MAX_CPU_ISA"))):
        return True
    return not readnet.TORCH_IMPORTED_BEFORE_PIN and _caps_below_amx(readnet.ONEDNN_ISA_AT_IMPORT)


def cpu_bf16_is_safe() -> bool:
    """Whether CPU bf16 autocast gives correct results here: no AMX, or oneDNN capped below it."""
    return not cpu_has_amx() or isa_pinned()


def require_safe_cpu_bf16() -> None:
    """Raise :class:`UnsafeCPUBF16Error` unless :func:`cpu_bf16_is_safe`."""
    if cpu_bf16_is_safe():
        return
    if readnet.TORCH_IMPORTED_BEFORE_PIN:
        reason = f"torch was imported before readnet could set {ISA_VARIABLE}"
    else:
        reason = f"{ISA_VARIABLE}={readnet.ONEDNN_ISA_AT_IMPORT} allows AMX"
    raise UnsafeCPUBF16Error(
        f"CPU bf16 autocast was requested on a CPU with AMX-BF16, but {reason}, so oneDNN may use its "
        "AMX bf16 kernels, whose multi-threaded ResNet-50 training steps give NaN or wrong losses. "
        f"Import readnet before torch, or set {ISA_VARIABLE}={ISA_PIN} before starting Python, "
        "or set amp=false."
    )

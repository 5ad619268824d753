"""The one place a device name becomes a torch device: `resolve_device("auto" | "cpu" | "cuda" | "cuda:N")`.

`auto` is CUDA when torch sees a GPU, else the CPU. Asking for CUDA where torch cannot use it (a
CPU-only torch build, no GPU visible, a GPU index past the last one) raises `DeviceError` with a
sentence that says which and what to do, instead of torch's error from deep inside a model load.
Names are checked without importing torch (`check_device_name`), so configurations validate fast.
"""

from __future__ import annotations

import re

from .data.issues import DataError

DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"auto|cpu|mps|cuda(?::\d+)?")


class DeviceError(DataError):
    """A device that cannot be used on this machine, or a name that is not a device."""


def check_device_name(device: str) -> str:
    """`device` when it names a device (`DEVICE_NAMES`); `DeviceError` otherwise."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise DeviceError(f"unknown device {device!r}; use {DEVICE_NAMES}")
    return device


def resolve_device(device: str | None = "auto") -> str:
    """The torch device to run on: `auto` (or None) picks CUDA when torch sees a GPU, else `cpu`."""
    device = check_device_name(device or "auto")
    if device == "cpu":
        return device  # no torch import: a CPU run never needs to ask
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("device 'mps' was asked for, but this torch cannot use Apple's MPS here; "
                              "use device 'cpu' or 'auto'")
        return device
    _check_cuda(device, torch)
    return device


def _check_cuda(device: str, torch) -> None:
    if torch.version.cuda is None:
        raise DeviceError(
            f"device {device!r} was asked for, but the installed torch {torch.__version__} is a CPU-only build; "
            "install a CUDA build of torch (https://pytorch.org/get-started/locally/) or use device 'cpu' "
            "(or 'auto', which falls back to the CPU)")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {device!r} was asked for, but torch {torch.__version__} (CUDA {torch.version.cuda}) sees no "
            "GPU (check the driver with nvidia-smi and CUDA_VISIBLE_DEVICES); use device 'cpu' or 'auto'")
    index = int(device.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {device!r} was asked for, but torch sees {count} GPU(s) (cuda:0 to "
                          f"cuda:{count - 1}); use one of those, 'cpu' or 'auto'")

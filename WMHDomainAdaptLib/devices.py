"""Choosing the torch device: `auto` takes CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import torch

from .errors import InputError


def cuda_usable() -> bool:
    """A CUDA build without a working GPU (driver missing, no device) must not crash us."""
    try:
        return torch.backends.cuda.is_built() and torch.cuda.is_available() and torch.cuda.device_count() > 0
    except RuntimeError:
        return False


def mps_usable() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`, `cpu`, `cuda`, `cuda:N` or `mps` -> a usable torch.device, or a clear error."""
    name = (name or "auto").lower()
    if name == "auto":
        if cuda_usable():
            return torch.device("cuda")
        return torch.device("mps") if mps_usable() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not cuda_usable():
            raise InputError("--device", f"'{name}' requested but no usable CUDA GPU is present "
                                         "(use --device cpu or auto)")
        return torch.device(name)
    if name == "mps":
        if not mps_usable():
            raise InputError("--device", "'mps' requested but Apple MPS is not available")
        return torch.device("mps")
    raise InputError("--device", f"unknown device '{name}' (auto, cpu, cuda, mps)")

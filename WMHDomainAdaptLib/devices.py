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


def available_devices() -> list[dict[str, str]]:
    """What `--device` can be here, best first: "auto", each CUDA GPU by name, MPS, the CPU.

    `wmhda devices --json` prints this for the Slicer module, whose GUI process never imports torch.
    """
    found = [{"key": "auto", "label": "Auto (best available)"}]
    if cuda_usable():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            memory = properties.total_memory / 2**30
            label = f"GPU {index}: {properties.name} ({memory:.0f} GiB)"
            found.append({"key": f"cuda:{index}", "label": label})
    if mps_usable():
        found.append({"key": "mps", "label": "Apple GPU (MPS)"})
    found.append({"key": "cpu", "label": "CPU"})
    return found


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

"""A model file's header and hash, read without torch.

A `.safetensors` file starts with 8 bytes of header length and a JSON header whose `__metadata__`
holds our metadata under METADATA_KEY. Reading just that (a few kB) lets the Slicer GUI list,
describe and register models without importing torch, which only its worker process may load.
The weights are validated by `modelfile.read_metadata` / `load_model` in the worker, before use.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

METADATA_KEY = "wmhda"
MODEL_SUFFIX = ".safetensors"
MAX_HEADER_BYTES = 64 * 2**20


def file_sha256(path: str | Path) -> str:
    """SHA-256 of the file's bytes: what a model's `parent_sha256` and a result's provenance record."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_header(path: Path) -> tuple[dict, int]:
    """The safetensors JSON header and the offset where the tensor bytes start."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if not 0 < length <= MAX_HEADER_BYTES:
            raise ValueError("header size out of range")
        return json.loads(handle.read(length)), 8 + length


def metadata_sha256(metadata: dict) -> str:
    """SHA-256 of the metadata (all of it but this hash), canonical JSON: editing the threshold, the
    channel order or a preprocessing switch in a file changes results, so it must not go unseen."""
    canonical = json.dumps({k: v for k, v in metadata.items() if k != "metadata_sha256"},
                           sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_header_metadata(path: str | Path) -> dict:
    """The model metadata from a safetensors header; ValueError naming the file if it is not one."""
    path = Path(path)
    if path.suffix != MODEL_SUFFIX:
        raise ValueError(f"{path.name}: not a model file (expected a {MODEL_SUFFIX} file)")
    try:
        header, _ = _read_header(path)
        metadata = json.loads(header["__metadata__"][METADATA_KEY])
    except FileNotFoundError:
        raise ValueError(f"{path}: model file not found") from None
    except (OSError, struct.error, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path.name}: not a WMHDomainAdapt model file ({error})") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path.name}: not a WMHDomainAdapt model file (metadata is not an object)")
    return metadata


def check_weights(path: str | Path) -> dict:
    """The metadata, once the tensor bytes match the recorded `weights_sha256`; ValueError if not.

    The same digest as `modelfile.weights_sha256` (each tensor's name, then its little-endian bytes,
    in name order), taken from the file's bytes, so the GUI can refuse an altered model without torch.
    """
    path = Path(path)
    metadata = read_header_metadata(path)
    try:
        header, start = _read_header(path)
        data = path.read_bytes()[start:]
        digest = hashlib.sha256()
        for name in sorted(key for key in header if key != "__metadata__"):
            begin, end = header[name]["data_offsets"]
            if not 0 <= begin <= end <= len(data):
                raise ValueError(f"tensor '{name}' lies outside the file (truncated?)")
            digest.update(name.encode())
            digest.update(data[begin:end])
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path.name}: not a WMHDomainAdapt model file ({error})") from None
    if digest.hexdigest() != metadata.get("weights_sha256"):
        raise ValueError(f"{path.name}: weights do not match their recorded hash (the file was altered)")
    if "metadata_sha256" in metadata and metadata_sha256(metadata) != metadata["metadata_sha256"]:
        raise ValueError(f"{path.name}: metadata does not match its recorded hash (the file was altered)")
    return metadata

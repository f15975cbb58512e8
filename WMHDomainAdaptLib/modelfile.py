"""Model files that cannot run code: safetensors weights with JSON metadata in the same file.

Loading an untrusted file never unpickles anything. The metadata records everything needed to
repeat inference and to trace a model's history: format version, architecture and layer table,
input channels, preprocessing config, threshold, training summary, frozen layers, the parent
model's file hash, library version and creation time. A hash of the weights, checked on load,
catches a file altered after it was written. Files are written atomically and never overwritten
unless asked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import warnings
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import __version__
from .decision import Cut, cut_of
from .errors import InputError, InputWarning
from .io import atomic_write
from .model import Architecture, WMHNet, layer_table
from .modelheader import METADATA_KEY, MODEL_SUFFIX, file_sha256, metadata_sha256  # noqa: F401  (re-exported)
from .network_input import InputSpec, input_channel_names
from .preprocess import PreprocessConfig
from .scan_threshold import ScanThreshold

FORMAT_VERSION = 2  # 2: the metadata is hashed too (metadata_sha256)
READABLE_VERSIONS = (1, 2)  # version 1 files load, with a warning that their metadata is unprotected

# Preprocessing options added after the first model files were written, with the values those
# files were made with: a model must be preprocessed at inference exactly as it was trained.
PREPROCESSING_BEFORE_IT_WAS_RECORDED = {"n4_convergence": 1e-3}  # ITK's default


@dataclass
class LoadedModel:
    network: WMHNet
    metadata: dict
    path: Path

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict({**PREPROCESSING_BEFORE_IT_WAS_RECORDED,
                                           **self.metadata["preprocessing"]})

    @property
    def threshold(self) -> float:
        """The fixed threshold; `cut` is what a scan is segmented at (maybe a per-scan rule)."""
        return float(self.metadata["threshold"])

    @cached_property
    def input_spec(self) -> InputSpec:
        """What the network reads: its channels and neighbouring slices, from the file."""
        return InputSpec.of(self.preprocess_config)

    @cached_property
    def cut(self) -> Cut:
        """How this model turns a scan's probabilities into a mask (`decision.py`), read once."""
        return cut_of(self.metadata)

    def flair_of(self, image: np.ndarray) -> np.ndarray:
        """The normalized FLAIR among a preprocessed scan's own channels (`PreparedCase.image`)."""
        return image[self.preprocess_config.channels.index("flair")]


def weights_sha256(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_metadata(network: WMHNet, preprocessing: PreprocessConfig, threshold: float,
                   training: dict, parent_sha256: str | None = None) -> dict:
    """The metadata of a new model file (the weights hash is added by `save_model`)."""
    channels = input_channel_names(preprocessing)
    if network.architecture.in_channels != len(channels):
        raise ValueError(f"the network takes {network.architecture.in_channels} input channels, "
                         f"the preprocessing makes {len(channels)}")
    return {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": network.architecture.to_dict(),
        "layer_table": layer_table(network.architecture),
        "depth": len(network.layers),
        "input_channels": channels,
        "preprocessing": preprocessing.to_dict(),
        "threshold": float(threshold),
        "frozen_layers": int(network.frozen_layers),
        "frozen_layer_indices": sorted(network.frozen),
        "tune_layers": len(network.layers) - len(network.frozen),
        "parent_sha256": parent_sha256,
        "training": training,
    }


def save_model(path: str | Path, network: WMHNet, metadata: dict, overwrite: bool = False) -> Path:
    """Write weights + metadata atomically; refuse to replace an existing file unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(path, "model file already exists; choose another name (or allow overwrite)")
    tensors = {name: value.detach().cpu().contiguous() for name, value in network.state_dict().items()}
    metadata = {**metadata, "format_version": FORMAT_VERSION, "weights_sha256": weights_sha256(tensors)}
    metadata["metadata_sha256"] = metadata_sha256(metadata)
    header = {METADATA_KEY: json.dumps(metadata, allow_nan=False)}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def _read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    if not path.is_file():
        raise InputError(path, "model file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise InputError(path, f"not a readable model file (corrupt or truncated: {error})") from None
    if METADATA_KEY not in header:
        raise InputError(path, "not a WMHDomainAdapt model file (no wmhda metadata)")
    try:
        metadata = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError:
        raise InputError(path, "model metadata is not valid JSON (file corrupt)") from None
    return metadata, tensors


def _validate(path: Path, metadata: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse a file whose weights or metadata were altered, or whose fields have the wrong type
    or range, with one line naming the file and the field."""
    if not isinstance(metadata, dict):
        raise InputError(path, "model metadata is not a JSON object (file corrupt)")
    version = metadata.get("format_version")
    if version not in READABLE_VERSIONS:
        raise InputError(path, f"model format version {version}; this library (v{__version__}) "
                               f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    for key in ("architecture", "preprocessing", "threshold", "input_channels", "weights_sha256"):
        if key not in metadata:
            raise InputError(path, f"model metadata lacks '{key}'")
    if weights_sha256(tensors) != metadata["weights_sha256"]:
        raise InputError(path, "weights do not match their recorded hash (the file was altered)")
    if version >= 2 and metadata.get("metadata_sha256") != metadata_sha256(metadata):
        raise InputError(path, "metadata does not match its recorded hash (the file was altered: "
                               "threshold, channels or preprocessing may not be what it was trained with)")
    if version == 1:
        warnings.warn(InputWarning(path, "written before model metadata was hash-protected (format 1); "
                                         "an edit to its threshold or preprocessing would go unseen"),
                      stacklevel=3)
    _check_fields(path, metadata)


def _check_fields(path: Path, metadata: dict) -> None:
    """Types and ranges of the fields that decide results."""
    def bad(field: str, why: str) -> InputError:
        return InputError(path, f"model metadata '{field}' {why}")

    threshold = metadata["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise bad("threshold", f"must be a number between 0 and 1, got {threshold!r}")
    try:
        recorded = metadata["preprocessing"]
        config = PreprocessConfig.from_dict({**PREPROCESSING_BEFORE_IT_WAS_RECORDED, **recorded})
        architecture = Architecture.from_dict(metadata["architecture"])
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise bad("preprocessing' or 'architecture", f"is malformed ({error})") from None
    for field in fields(PreprocessConfig):
        value, default = getattr(config, field.name), field.default
        wanted = (int, float) if isinstance(default, float) else type(default)
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, wanted):
            raise bad(f"preprocessing.{field.name}", f"must be a {type(default).__name__}, got {value!r}")
    if metadata["input_channels"] != input_channel_names(config):
        raise bad("input_channels", f"{metadata['input_channels']!r} do not follow from the preprocessing "
                                    f"({input_channel_names(config)!r})")
    if architecture.in_channels != len(metadata["input_channels"]):
        raise bad("architecture.in_channels", f"is {architecture.in_channels}, but the file names "
                                              f"{len(metadata['input_channels'])} input channels")
    frozen, depth = metadata.get("frozen_layer_indices", []), len(layer_table(architecture))
    if not isinstance(frozen, list) or not all(type(i) is int and 0 <= i < depth for i in frozen):
        raise bad("frozen_layer_indices", f"must be a list of layer numbers 0 to {depth - 1}, got {frozen!r}")
    if metadata.get("scan_threshold") is not None:
        try:
            ScanThreshold.from_dict(metadata["scan_threshold"])
        except (TypeError, ValueError) as error:
            raise InputError(path, f"the per-scan threshold rule is malformed ({error})") from None


def read_metadata(path: str | Path) -> dict:
    """Validated metadata of a model file."""
    path = Path(path)
    metadata, tensors = _read(path)
    _validate(path, metadata, tensors)
    return metadata


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Validate and load a model file into a `WMHNet` on `device`, in eval mode."""
    path = Path(path)
    metadata, tensors = _read(path)
    _validate(path, metadata, tensors)
    try:
        network = WMHNet(Architecture.from_dict(metadata["architecture"]))
        network.load_state_dict(tensors, strict=True)
    except (TypeError, KeyError, ValueError, RuntimeError) as error:
        first_line = str(error).splitlines()[0]
        raise InputError(path, f"weights do not fit the recorded architecture ({first_line})") from None
    network.freeze(metadata.get("frozen_layer_indices", range(int(metadata.get("frozen_layers", 0)))))
    return LoadedModel(network.to(device).eval(), metadata, path)

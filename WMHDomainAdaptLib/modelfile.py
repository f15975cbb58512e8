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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import __version__
from .errors import InputError
from .io import atomic_write
from .model import Architecture, WMHNet, layer_table
from .modelheader import METADATA_KEY, MODEL_SUFFIX, file_sha256  # noqa: F401  (file_sha256: re-exported)
from .preprocess import PreprocessConfig, input_channel_names
from .scan_threshold import ScanThreshold

FORMAT_VERSION = 1

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
        """The fixed threshold; see `threshold_for` for the one a scan is segmented at."""
        return float(self.metadata["threshold"])

    @property
    def scan_threshold(self) -> ScanThreshold | None:
        """The per-scan threshold rule of a calibrated model (`wmhda calibrate`), else None."""
        rule = self.metadata.get("scan_threshold")
        return None if rule is None else ScanThreshold.from_dict(rule)

    def threshold_for(self, probability: np.ndarray, image: np.ndarray) -> float:
        """The threshold for one scan (`image`: its normalized channels, as preprocessed): from
        the scan's lesion contrast where the model has a rule, else the fixed one."""
        rule = self.scan_threshold
        if rule is None:
            return self.threshold
        return rule.for_scan(probability, self.flair_of(image), self.threshold)

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
    metadata = {**metadata, "weights_sha256": weights_sha256(tensors)}
    header = {METADATA_KEY: json.dumps(metadata)}
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
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(path, f"model format version {version}; this library (v{__version__}) "
                               f"reads version {FORMAT_VERSION}")
    for key in ("architecture", "preprocessing", "threshold", "input_channels", "weights_sha256"):
        if key not in metadata:
            raise InputError(path, f"model metadata lacks '{key}'")
    if weights_sha256(tensors) != metadata["weights_sha256"]:
        raise InputError(path, "weights do not match their recorded hash (the file was altered)")
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
    if network.architecture.in_channels != len(metadata["input_channels"]):
        raise InputError(path, f"the network takes {network.architecture.in_channels} input channels, but "
                               f"the file names {len(metadata['input_channels'])} (metadata altered)")
    network.freeze(metadata.get("frozen_layer_indices", range(int(metadata.get("frozen_layers", 0)))))
    return LoadedModel(network.to(device).eval(), metadata, path)


def list_models(folder: str | Path) -> list[Path]:
    """Model files in a folder, newest first (unvalidated: call read_metadata to check one)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"*{MODEL_SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)

"""Model registry: the shipped source model plus every adapted model in the user's model folder.

Listing and registering read only the JSON header of each `.safetensors` file (a few kB, through
`WMHDomainAdaptLib.modelheader`, no torch import), so the model selector fills instantly even
before PyTorch is installed and the GUI process never imports torch. Registering also checks the
weights' bytes against their recorded hash (still without torch); the worker validates the whole
model again before any use.

A new model is first written by the worker into a scratch folder; `register` then moves it into the
user folder under a fresh name. A cancelled or failed adaptation therefore never leaves a file in
the registry, and no file, least of all the parent, is ever overwritten.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from WMHDomainAdaptLib.modelheader import MODEL_SUFFIX, check_weights, read_header_metadata


@dataclass(frozen=True)
class ModelEntry:
    path: Path
    metadata: dict
    shipped: bool

    @property
    def training(self) -> dict:
        return self.metadata.get("training") or {}

    @property
    def label(self) -> str:
        if self.shipped:
            return f"{self.path.stem} (shipped source model)"
        dice = self.training.get("best_val_dice")
        dice_text = f", Dice {dice:.2f}" if isinstance(dice, (int, float)) else ""
        return (f"{self.path.stem} (N={self.training.get('n_cases', '?')}, "
                f"K={self.metadata.get('tune_layers', '?')}{dice_text})")

    @property
    def tooltip(self) -> str:
        training = self.training
        parent_sha = self.metadata.get("parent_sha256")
        parent = (f"{training.get('parent', 'unknown')} (sha256 {parent_sha[:12]})" if parent_sha
                  else "none: trained from scratch")
        dice = training.get("best_val_dice")
        lines = [f"Parent: {parent}",
                 f"Training scans (N): {training.get('n_cases', '?')}"
                 f" ({training.get('domain', 'unknown domain')})",
                 f"Tuned layers: {self.metadata.get('tune_layers', '?')} of {self.metadata.get('depth', 15)}"
                 f" (frozen: {self.metadata.get('frozen_layers', '?')})",
                 "Validation Dice: " + (f"{dice:.3f}" if isinstance(dice, (int, float)) else "?"),
                 f"Created: {self.metadata.get('created', '?')}",
                 f"File: {self.path}"]
        return "\n".join(lines)


class ModelRegistry:
    """Shipped models (read-only) and the user's adapted models (a folder)."""

    def __init__(self, user_folder: str | Path, shipped: list[str | Path] = ()):
        self.user_folder = Path(user_folder)
        self.shipped = [Path(p) for p in shipped]

    def entries(self) -> tuple[list[ModelEntry], list[str]]:
        """Usable models (shipped first, then adapted, newest first) and one line per unreadable file."""
        entries, problems = [], []
        found = self.user_folder.glob(f"*{MODEL_SUFFIX}") if self.user_folder.is_dir() else []
        # hidden names are writes in progress, or left by a killed one (WMHDomainAdaptLib.io.atomic_write)
        user_files = sorted((p for p in found if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime,
                            reverse=True)
        for path, shipped in [(p, True) for p in self.shipped] + [(p, False) for p in user_files]:
            try:
                entries.append(ModelEntry(path, read_header_metadata(path), shipped))
            except ValueError as error:
                problems.append(str(error))
        return entries, problems

    def find(self, path: str | Path) -> ModelEntry | None:
        target = Path(path).resolve()
        return next((e for e in self.entries()[0] if e.path.resolve() == target), None)

    def new_name(self, parent: str | Path, now: dt.datetime | None = None) -> str:
        stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
        stem = Path(parent).stem.split("_adapted_")[0]
        return f"{stem}_adapted_{stamp}"

    def register(self, produced: str | Path, parent: str | Path, now: dt.datetime | None = None) -> Path:
        """Validate a freshly adapted model and move it into the user folder under a new name."""
        base = self.new_name(parent, now)
        suffixes = [""] + [f"_{n}" for n in range(2, 1000)]
        candidates = (self.user_folder / f"{base}{suffix}{MODEL_SUFFIX}" for suffix in suffixes)
        return publish_model(produced, candidates)


def publish_model(produced: str | Path, targets) -> Path:
    """Check `produced`'s weights against their hash, then move it to the first free name of `targets`.

    The copy lands under a hidden name in the target folder first and is then hard-linked into
    place, which fails instead of replacing a file that appeared in the meantime.
    """
    produced = Path(produced)
    check_weights(produced)
    for target in targets:
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.parent / f".{target.name}.partial"
        shutil.copyfile(produced, partial)
        try:
            os.link(partial, target)
        except FileExistsError:
            continue
        finally:
            partial.unlink(missing_ok=True)
        produced.unlink(missing_ok=True)
        return target
    raise FileExistsError(f"{produced.name}: every target name is taken; nothing was overwritten")

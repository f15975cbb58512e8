"""Writing subjects to disk: one split (a folder of subjects + manifest.csv) or a preset of splits.

The preset table below is the one place that says how big the standard benchmark is. Seeds are
derived so that no two subjects of a preset share one: split k of a preset with base seed S uses
split seed S * 100 + k, and subject i of a split with seed s uses s * 1_000_000 + i.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..dataset import Case, write_manifest
from ..errors import InputError
from ..io import atomic_write
from ..progress import CancelToken, ProgressCallback, ProgressTracker
from .domains import get_domain
from .generate import check_subject_id, generate_subject, resolve_fov, write_subject

SUBJECTS_PER_SEED = 1_000_000
SPLITS_PER_SEED = 100


@dataclass(frozen=True)
class SplitSpec:
    """A split of the benchmark: its folder name, its domain, and its index (seeds its subjects)."""

    name: str
    domain: str
    index: int


SPLITS = (SplitSpec("source_train", "source", 0), SplitSpec("source_val", "source", 1),
          SplitSpec("source_test", "source", 2), SplitSpec("target_pool", "target", 3),
          SplitSpec("target_test", "target", 4), SplitSpec("mild_test", "mild", 5))

# Subjects per split, and the field of view, of each preset. `standard` is the benchmark that
# results are reported on (20 test subjects per domain: 4-8 were too noisy in the calibration).
PRESETS: dict[str, dict] = {
    "tiny": {"fov": "small", "sizes": {s.name: 2 for s in SPLITS}},
    "demo": {"fov": "full", "sizes": {"source_train": 6, "source_val": 2, "source_test": 2,
                                      "target_pool": 5, "target_test": 4, "mild_test": 2}},
    "standard": {"fov": "full", "sizes": {"source_train": 40, "source_val": 6, "source_test": 20,
                                          "target_pool": 20, "target_test": 20, "mild_test": 20}},
}


def subject_seed(split_seed: int, index: int) -> int:
    return split_seed * SUBJECTS_PER_SEED + index


def _make_one(job: tuple) -> Case:
    domain, seed, subject_id, fov, out_dir = job
    return write_subject(generate_subject(domain, seed, subject_id, fov), out_dir)


def check_out_dir(out_dir: str | Path) -> Path:
    """Create `out_dir` and prove it writable now, rather than after minutes of generation."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".wmhda_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise InputError(out_dir, f"output folder is not writable ({error.strerror or error})") from None
    return out_dir


def write_split(out_dir: str | Path, domain: str, n: int, seed: int, fov: str = "full",
                prefix: str | None = None, workers: int = 1,
                progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                task: str = "synth") -> list[Case]:
    """Generate `n` subjects of `domain` into `out_dir/<id>/` and write `out_dir/manifest.csv`.

    Subject i gets seed `seed * 1_000_000 + i` and id `<prefix>-<i:03d>` (prefix defaults to the
    domain name); `workers` > 1 generates in parallel processes, with identical results."""
    get_domain(domain)
    resolve_fov(fov)
    if n < 1:
        raise InputError("--n", f"number of subjects must be at least 1, got {n}")
    if n > SUBJECTS_PER_SEED:
        raise InputError("--n", f"at most {SUBJECTS_PER_SEED} subjects per split, got {n}")
    if seed < 0:
        raise InputError("--seed", f"seed must be >= 0, got {seed}")
    if workers < 1:
        raise InputError("--workers", f"workers must be at least 1, got {workers}")
    out_dir = check_out_dir(out_dir)
    prefix = check_subject_id(prefix or domain)
    jobs = [(domain, subject_seed(seed, i), f"{prefix}-{i:03d}", fov, out_dir) for i in range(n)]
    tracker = ProgressTracker(task, n, progress, cancel)
    tracker.update(0)
    cases = []
    if workers == 1:
        for job in jobs:
            cases.append(_make_one(job))
            tracker.update(len(cases), message=job[2])
    else:
        context = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
        with context.Pool(min(workers, n)) as pool:
            for case in pool.imap(_make_one, jobs):
                cases.append(case)
                tracker.update(len(cases), message=case.case_id)
    write_manifest(cases, out_dir / "manifest.csv")
    return cases


def preset_sizes(preset: str, sizes: Mapping[str, int] | None = None) -> dict[str, int]:
    """The preset's subjects per split, with `sizes` overriding some of them."""
    if preset not in PRESETS:
        raise InputError("--preset", f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    result = dict(PRESETS[preset]["sizes"])
    for name, count in (sizes or {}).items():
        if name not in result:
            raise InputError("--sizes", f"unknown split {name!r}; splits are {', '.join(result)}")
        if count < 0:
            raise InputError("--sizes", f"split {name} needs a size >= 0, got {count}")
        result[name] = int(count)
    return result


def write_preset(out_dir: str | Path, preset: str, seed: int = 0,
                 sizes: Mapping[str, int] | None = None, fov: str | None = None, workers: int = 1,
                 progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> dict[str, list[Case]]:
    """Write every split of `preset` into `out_dir/<split>/` (a split of size 0 is skipped)."""
    counts = preset_sizes(preset, sizes)
    fov = fov or PRESETS[preset]["fov"]
    if seed < 0 or seed * SPLITS_PER_SEED + len(SPLITS) < 0:
        raise InputError("--seed", f"seed must be >= 0, got {seed}")
    out_dir = check_out_dir(out_dir)
    _write_description(out_dir, preset, seed, counts, fov)
    written = {}
    for split in SPLITS:
        if counts[split.name] == 0:
            continue
        written[split.name] = write_split(
            out_dir / split.name, split.domain, counts[split.name], seed * SPLITS_PER_SEED + split.index,
            fov=fov, prefix=split.name.replace("_", "-"), workers=workers, progress=progress,
            cancel=cancel, task=split.name)
    return written


def _write_description(out_dir: Path, preset: str, seed: int, counts: dict[str, int], fov: str) -> None:
    """benchmark.json: which split holds which domain, how many subjects, and their seeds."""
    splits = {split.name: {"domain": split.domain, "n": counts[split.name],
                           "split_seed": seed * SPLITS_PER_SEED + split.index,
                           "subject_seeds": "split_seed * 1000000 + i"}
              for split in SPLITS if counts[split.name]}
    text = json.dumps({"preset": preset, "seed": seed, "fov": str(fov), "splits": splits}, indent=1)
    atomic_write(out_dir / "benchmark.json", lambda tmp: tmp.write_text(text))

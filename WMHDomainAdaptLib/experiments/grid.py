"""The run grid: which runs an experiment consists of, and which target scans each one uses.

Scratch and fine-tuned runs of the same (N, draw) share the same scans and the same seed (hence
the same fixed patch set), so their difference is the starting weights and the tuned layers only.
The scans of a draw depend only on (seed, N, draw), so the grid can grow on a resumed run
without changing the runs already made. With N equal to the whole pool all draws would pick the
same scans, so there is one draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..model import DEPTH
from .config import ALL, ExperimentConfig

SOURCE = "source"
SCRATCH = "scratch"
FINETUNE = "finetune"
FIRST_LAYERS = "finetune_first"
REFERENCE_PREFIX = "source_on_"  # the source model on a reference test set (e.g. source_test)


@dataclass(frozen=True)
class RunSpec:
    setting: str
    n_scans: int
    tune_layers: int
    draw: int
    seed: int
    scan_indices: tuple[int, ...] = ()  # into the target pool
    test_set: str = "target_test"

    @property
    def key(self) -> tuple[str, int, int, int]:
        return (self.setting, self.n_scans, self.tune_layers, self.draw)

    def describe(self) -> str:
        if self.n_scans == 0:
            return f"{self.setting} on {self.test_set}"
        return f"{self.setting} N={self.n_scans} K={self.tune_layers} draw={self.draw}"


def resolve_scan_counts(counts, pool_size: int, key: str = "n_scans") -> list[int]:
    """`all` -> the pool size; counts beyond the pool are an error, not silently capped."""
    resolved = []
    for count in counts:
        value = pool_size if count == ALL else int(count)
        if value > pool_size:
            raise InputError(key, f"asks for {value} target scans but the target pool holds {pool_size}")
        resolved.append(value)
    return sorted(set(resolved))


def draw_scans(seed: int, n_scans: int, draw: int, pool_size: int) -> tuple[int, ...]:
    rng = np.random.default_rng([seed, n_scans, draw])
    return tuple(sorted(int(i) for i in rng.choice(pool_size, n_scans, replace=False)))


def draws_for(config: ExperimentConfig, n_scans: int, pool_size: int) -> range:
    return range(1 if n_scans == pool_size else config.draws)


def build_grid(config: ExperimentConfig, pool_size: int) -> list[RunSpec]:
    """Source runs first, then draw by draw, each N in increasing order: early results cover all N."""
    runs = [RunSpec(SOURCE, 0, 0, 0, config.seed)]
    runs += [RunSpec(REFERENCE_PREFIX + name, 0, 0, 0, config.seed, test_set=name)
             for name in sorted(config.data.reference_tests)]
    counts = resolve_scan_counts(config.n_scans, pool_size)
    first_counts = resolve_scan_counts(config.first_layers.n_scans, pool_size, "first_layers.n_scans")
    for draw in range(config.draws):
        for n in sorted(set(counts) | set(first_counts)):
            if draw not in draws_for(config, n, pool_size):
                continue
            seed, scans = config.seed + 1000 * draw + n, draw_scans(config.seed, n, draw, pool_size)
            if n in counts:
                runs.append(RunSpec(SCRATCH, n, DEPTH, draw, seed, scans))
                runs += [RunSpec(FINETUNE, n, k, draw, seed, scans) for k in config.tune_layers]
            if n in first_counts:
                runs += [RunSpec(FIRST_LAYERS, n, k, draw, seed, scans)
                         for k in config.first_layers.tune_layers]
    return runs

"""Patch sampling for training: 2D axial patches, lesion patches oversampled to about half.

As in the group's earlier WMH network, half of the patches are centred on a lesion voxel and the
rest on random brain voxels, since lesions fill well under 1% of the brain and uniform sampling
would teach the network to say "no lesion" everywhere.

A lesion voxel drawn uniformly mostly lands in the few large confluent lesions, so small lesions,
which decide Dice on scans with a light load, are rarely seen. `lesion_balance` centres that share
of the lesion patches on a lesion drawn uniformly among the lesions (26-connected components,
as the metrics count them).
"""

from __future__ import annotations

import numpy as np

from .cases import PreparedCase
from .errors import InputError
from .lesions import components
from .network_input import InputSpec


class PatchSampler:
    """Draws (image, label) patches of `size` x `size` from prepared, labelled cases."""

    def __init__(self, cases: list[PreparedCase], spec: InputSpec, size: int, lesion_fraction: float = 0.5,
                 slice_filter=None, lesion_balance: float = 0.0):
        if not cases:
            raise InputError(None, "no training case given")
        self.spec = spec  # what the network reads: its channels, with the neighbouring slices
        self.size, self.half = size, size // 2
        self.lesion_fraction, self.lesion_balance = lesion_fraction, lesion_balance
        self.cases = cases  # not copied: patches are cut with zeros beyond edges
        self.labels = [c.label for c in cases]
        self.brain_voxels = [np.argwhere(c.brain_mask) for c in cases]
        self.lesion_voxels = [np.argwhere(c.label == 1) for c in cases]
        if slice_filter is not None:  # keep patch centres on the slices `slice_filter(z)` accepts
            self.brain_voxels = [v[slice_filter(v[:, 0])] for v in self.brain_voxels]
            self.lesion_voxels = [v[slice_filter(v[:, 0])] for v in self.lesion_voxels]
        self.with_lesions = [i for i, v in enumerate(self.lesion_voxels) if len(v)]
        self.with_brain = [i for i, v in enumerate(self.brain_voxels) if len(v)]
        if not self.with_lesions:
            ids = ", ".join(c.case_id for c in cases)
            raise InputError(None, f"the WMH labels of every training case are empty ({ids})")
        self.lesions = self._split_into_lesions(cases) if lesion_balance > 0 else []

    def _split_into_lesions(self, cases: list[PreparedCase]) -> list[tuple[int, np.ndarray]]:
        """(case index, voxels) for every lesion, keeping only the voxels allowed as centres."""
        lesions = []
        for case in self.with_lesions:
            voxels = self.lesion_voxels[case]
            lesion_ids = components(cases[case].label == 1)[0][tuple(voxels.T)]
            order = np.argsort(lesion_ids, kind="stable")
            cuts = np.flatnonzero(np.diff(lesion_ids[order])) + 1
            lesions += [(case, group) for group in np.split(voxels[order], cuts)]
        return lesions

    def sample(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """`count` patches: images (n, channels, size, size) float32, labels (n, 1, size, size) uint8."""
        images = np.zeros((count, self.spec.size, self.size, self.size), np.float32)
        labels = np.zeros((count, 1, self.size, self.size), np.uint8)
        lesion_draws = rng.random(count) < self.lesion_fraction
        for n, on_lesion in enumerate(lesion_draws):
            if on_lesion and self.lesion_balance and rng.random() < self.lesion_balance:
                case, pool = self.lesions[rng.integers(len(self.lesions))]
            elif on_lesion:
                case = self.with_lesions[rng.integers(len(self.with_lesions))]
                pool = self.lesion_voxels[case]
            else:
                case = self.with_brain[rng.integers(len(self.with_brain))]
                pool = self.brain_voxels[case]
            z, y, x = pool[rng.integers(len(pool))]
            rows, cols, patch_rows, patch_cols = self._window(y, x, self.labels[case].shape[1:])
            window = self.cases[case].network_input(self.spec, np.array([z]), rows, cols)[0]
            images[n][:, patch_rows, patch_cols] = window
            labels[n, 0][patch_rows, patch_cols] = self.labels[case][z, rows, cols]
        return images, labels

    def _window(self, y: int, x: int, plane_shape: tuple[int, int]) -> tuple[slice, slice, slice, slice]:
        """Where the patch centred on (y, x) overlaps the plane: its rows and columns there, and
        the same in the patch, whose rest stays zero.

        Why not pad every case once and slice: on a brain about 155 voxels across, a copy padded
        by half a 64-voxel patch on each side takes twice the memory of the image itself.
        """
        top, left = y - self.half, x - self.half
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + self.size, plane_shape[0]), min(left + self.size, plane_shape[1])
        return slice(y0, y1), slice(x0, x1), slice(y0 - top, y1 - top), slice(x0 - left, x1 - left)


def flip_left_right(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> None:
    """Mirror a random half of the patches (and their labels) left-right, in place."""
    flip = rng.random(len(images)) < 0.5
    images[flip] = images[flip, ..., ::-1]
    labels[flip] = labels[flip, ..., ::-1]


def augment(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """Light augmentation: left-right flips and a per-patch, per-channel intensity scale and shift."""
    images, labels = images.copy(), labels.copy()
    flip_left_right(images, labels, rng)
    scale = rng.normal(1.0, 0.1, (len(images), images.shape[1], 1, 1)).astype(np.float32)
    shift = rng.normal(0.0, 0.1, (len(images), images.shape[1], 1, 1)).astype(np.float32)
    return images * scale + shift, labels

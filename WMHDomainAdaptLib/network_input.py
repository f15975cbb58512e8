"""What the network is fed: a slice's own channels and those of its neighbours, in one order.

Preprocessing (`preprocess.py`) makes the normalized channels of each slice once per scan; the
neighbours' channels are stacked here, per batch of slices, when the network is fed. The order
of the channels is recorded in every model file (`input_channels`) and checked on load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .preprocess import PreprocessConfig


@dataclass(frozen=True)
class InputSpec:
    """What one network reads: the slice's own channels, then those of `context_slices`
    neighbours each side. It belongs to the model (`LoadedModel.input_spec`, read from the file's
    preprocessing), not to the cases, which carry only their own channels."""

    channels: tuple[str, ...]
    context_slices: int = 0

    @classmethod
    def of(cls, config: PreprocessConfig) -> InputSpec:
        return cls(tuple(config.channels), config.context_slices)

    @property
    def names(self) -> list[str]:
        """The input channels in order: the slice's own, then those of z-1, z+1, z-2, ..."""
        return [name if offset == 0 else f"{name}[z{offset:+d}]"
                for offset in context_offsets(self.context_slices) for name in self.channels]

    @property
    def size(self) -> int:
        return len(self.channels) * len(context_offsets(self.context_slices))

    def stack(self, image: np.ndarray, zs: np.ndarray) -> np.ndarray:
        """(len(zs), size, y, x) float32: the network's input for the slices `zs` of `image`."""
        return slices_with_context(image, zs, self.context_slices)


def input_channel_names(config: PreprocessConfig) -> list[str]:
    """The input channels a preprocessing makes, in order (what a model file records)."""
    return InputSpec.of(config).names


def context_offsets(context_slices: int) -> list[int]:
    """Slice offsets in input channel order: the slice itself, then z-1, z+1, z-2, z+2, ..."""
    return [0] + [sign * distance for distance in range(1, context_slices + 1) for sign in (-1, 1)]


def slices_with_context(image: np.ndarray, zs: np.ndarray, context_slices: int) -> np.ndarray:
    """Network input for the slices `zs` of a (channels, z, y, x) volume: (len(zs), channels *
    (2K + 1), y, x), each slice's own channels followed by those of its K neighbours each side.

    Why per batch of slices rather than once per volume: a stacked copy of every training scan
    takes 2K + 1 times the memory of the scans themselves. Why neighbours at all: on 6 mm slices,
    whether a faint voxel is mostly lesion depends on how far the lesion reaches into the
    neighbouring slabs, which a 2D network cannot see. Slices beyond the volume are zeros, the
    value outside the brain.
    """
    zs = np.asarray(zs)
    channels, depth = image.shape[:2]
    offsets = context_offsets(context_slices)
    stacked = np.zeros((len(zs), channels * len(offsets), *image.shape[2:]), np.float32)
    for index, offset in enumerate(offsets):
        source = zs + offset
        inside = (source >= 0) & (source < depth)
        block = image[:, source[inside]].transpose(1, 0, 2, 3)
        stacked[inside, index * channels:(index + 1) * channels] = block
    return stacked

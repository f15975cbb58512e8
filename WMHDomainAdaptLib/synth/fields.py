"""Separable linear operators and smooth random fields, the numerical core of the benchmark.

Every resampling step here (coarse-to-fine warps, slab averaging, in-plane point-spread functions)
is separable, so it is written as one small matrix per axis applied with `np.tensordot`: exact,
fast on 2 cores, and the same operator can be applied to an image and to its label.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.special import erf


def apply_separable(volume: np.ndarray, matrices: tuple[np.ndarray | None, ...]) -> np.ndarray:
    """Apply one (n_out, n_in) matrix per axis of a (z, y, x) volume; None leaves an axis as is.

    The axis that shrinks most goes first, so later products run on less data."""
    result = np.asarray(volume, dtype=np.float32)
    order = sorted((axis for axis, m in enumerate(matrices) if m is not None),
                   key=lambda axis: matrices[axis].shape[0] / matrices[axis].shape[1])
    for axis in order:
        matrix = matrices[axis].astype(np.float32)
        result = np.moveaxis(np.tensordot(matrix, result, axes=([1], [axis])), 0, axis)
    return np.ascontiguousarray(result)


def linear_upsample_matrix(n_coarse: int, step: int, n_fine: int) -> np.ndarray:
    """Linear interpolation from samples at 0, step, 2*step, ... onto 0 .. n_fine-1."""
    position = np.arange(n_fine) / step
    low = np.clip(np.floor(position).astype(int), 0, n_coarse - 2)
    weight = position - low
    matrix = np.zeros((n_fine, n_coarse), dtype=np.float64)
    rows = np.arange(n_fine)
    matrix[rows, low] = 1.0 - weight
    matrix[rows, low + 1] = weight
    return matrix


def coarse_size(n_fine: int, step: int) -> int:
    """Number of coarse samples at 0, step, ... that reach the last fine index."""
    return max(2, -(-(n_fine - 1) // step) + 1)


def slab_matrix(n_hi: int, spacing: float, thickness: float, edge_mm: float,
                psf_sigma_mm: float = 0.0, supersample: int = 8) -> np.ndarray:
    """Weights that average a 1 mm axis into voxels of `spacing` mm (slab averaging).

    Voxel j covers the same field of view as the 1 mm grid (both start at the edge of voxel 0)
    and its centre is at -0.5 + spacing/2 + j*spacing in 1 mm index units. The slice profile is
    a rect of `thickness` with Gaussian edges of `edge_mm` (a real RF slice profile), convolved
    with an in-plane Gaussian PSF of `psf_sigma_mm`; each 1 mm voxel is integrated over its
    extent by supersampling. Rows sum to one.
    """
    n_lo = int(np.floor(n_hi / spacing + 1e-6))
    centres = -0.5 + spacing / 2 + np.arange(n_lo) * spacing
    samples = np.arange(n_hi)[:, None] + (np.arange(supersample) + 0.5) / supersample - 0.5
    offset = samples[None, :, :] - centres[:, None, None]
    edge = float(np.hypot(edge_mm, psf_sigma_mm))
    if edge <= 0:
        profile = (np.abs(offset) <= thickness / 2).astype(float)
    else:
        scale = edge * np.sqrt(2.0)
        profile = 0.5 * (erf((offset + thickness / 2) / scale) - erf((offset - thickness / 2) / scale))
    matrix = profile.mean(axis=2)
    return matrix / matrix.sum(axis=1, keepdims=True)


def gaussian_matrix(n: int, sigma_px: float) -> np.ndarray | None:
    """A normalised Gaussian blur along one axis as a matrix (None for no blur)."""
    if sigma_px <= 0:
        return None
    offset = np.arange(n)[:, None] - np.arange(n)[None, :]
    matrix = np.exp(-0.5 * (offset / sigma_px) ** 2)
    return matrix / matrix.sum(axis=1, keepdims=True)


def smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """G_sigma: Gaussian-smoothed white noise scaled to unit variance (sigma in voxels).

    Wide kernels are computed on a grid coarser by up to sigma/2 and interpolated back: the field
    has no detail finer than sigma, and a 1 mm field of 5 M voxels would cost a second each."""
    step = max(1, int(sigma // 2))
    coarse = tuple(coarse_size(n, step) for n in shape) if step > 1 else tuple(shape)
    field = ndi.gaussian_filter(rng.standard_normal(coarse, dtype=np.float32), sigma / step,
                                mode="wrap")
    field /= np.float32((4 * np.pi * (sigma / step) ** 2) ** (-len(shape) / 4))
    if step == 1:
        return field
    matrices = tuple(linear_upsample_matrix(c, step, n) for c, n in zip(coarse, shape))
    return apply_separable(field, matrices)

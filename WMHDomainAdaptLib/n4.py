"""N4 bias-field correction (Tustison et al., IEEE TMI 2010) in NumPy, computing what ITK's
`N4BiasFieldCorrectionImageFilter` computes with its default settings.

Why not ITK's filter: on the shrunk grid that preprocessing fits on (about 38 x 39 x 13 voxels) it
spends some 10 to 16 ms on each of its 200 sequential iterations, in general point-set code, so one
fit took 2.1 s even on a 16-core machine and set the floor of segmentation time. On a regular grid
every step of an iteration is a histogram, a few 512-point FFTs and small separable tensor
contractions: under a millisecond. The parametrization, the histogram sharpening and the B-spline
fit follow ITK's definitions, so for the same iterations the two agree to floating-point rounding
(tested against SimpleITK). ITK decides when a level has converged from a single-precision
statistic, so near the threshold the two can stop a level one iteration apart; on 40 test scans
that changed 5 voxels of the shipped model's masks in all (docs/model.md, Speed).

One iteration: sharpen the histogram of the log image inside the mask (Wiener deconvolution of a
Gaussian bias blur), take the residual between the log image and its sharpened version, fit a cubic
B-spline to it (one level of Lee et al.'s multilevel B-spline approximation) and add the fitted
control points to the log bias field's lattice. Each fitting level doubles the lattice resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

SPLINE_ORDER = 3          # cubic B-splines, ITK's default
CONTROL_POINTS = 4        # per axis at the first fitting level, ITK's default
HISTOGRAM_BINS = 200      # ITK's defaults for the histogram sharpening
BIAS_FWHM = 0.15
WIENER_NOISE = 0.01
BSPLINE_EPSILON = 1e-3    # ITK moves a point at the domain's upper end this far inside


def cubic_bspline_weights(fraction: np.ndarray) -> np.ndarray:
    """The four uniform cubic B-spline weights of a point `fraction` (0 to 1) into its span."""
    t = fraction[:, None]
    return np.concatenate([(1 - t) ** 3, 3 * t ** 3 - 6 * t ** 2 + 4,
                           -3 * t ** 3 + 3 * t ** 2 + 3 * t + 1, t ** 3], axis=1) / 6


def basis_matrix(size: int, control_points: int) -> np.ndarray:
    """(size, control_points) B-spline weights of the voxels of one axis.

    As in ITK, voxel i sits at i / (size - 1) of the spline's whole domain, whatever the grid's
    spacing: a lattice fitted on a shrunk grid therefore stretches over any other grid of the same
    field of view, such as the full-resolution image."""
    spans = control_points - SPLINE_ORDER
    position = spans * np.arange(size) / max(size - 1, 1)
    epsilon = spans / max(size - 1, 1) * BSPLINE_EPSILON
    position[np.abs(position - spans) <= epsilon] = spans - epsilon
    first = np.floor(position).astype(int)
    weights = cubic_bspline_weights(position - first)
    matrix = np.zeros((size, control_points))
    for offset in range(SPLINE_ORDER + 1):
        matrix[np.arange(size), first + offset] = weights[:, offset]
    return matrix


def grid_bases(shape: Sequence[int], lattice_shape: Sequence[int]) -> list[np.ndarray]:
    """The basis matrices of a (z, y, x) grid for a lattice of `lattice_shape` control points."""
    return [basis_matrix(size, count) for size, count in zip(shape, lattice_shape)]


def along_axes(array: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Multiply each axis of a 3D array by its matrix (axis k of the result has matrices[k]'s rows)."""
    for axis, matrix in enumerate(matrices):
        array = np.moveaxis(np.tensordot(matrix, array, axes=(1, axis)), 0, axis)
    return array


def evaluate(lattice: np.ndarray, bases: Sequence[np.ndarray]) -> np.ndarray:
    """The spline of a (z, y, x) control-point lattice on the grid that `bases` describe."""
    return along_axes(lattice, bases)


def level_fitter(mask: np.ndarray, bases: Sequence[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """One level of multilevel B-spline approximation inside `mask`, as a function of the residual.

    Each voxel proposes a value for each of its 64 control points, in proportion to that point's
    weight; a control point takes the weighted mean of its proposals (delta / omega). On a grid the
    sums over voxels separate by axis. The weights depend only on the mask and the lattice size, so
    they are computed once per level rather than at every iteration."""
    squares_z, squares_y, squares_x = ((basis ** 2).sum(1) for basis in bases)
    weight_sum = squares_z[:, None, None] * squares_y[None, :, None] * squares_x[None, None, :]
    omega = along_axes(mask.astype(float), [(basis ** 2).T for basis in bases])
    cubes = [(basis ** 3).T for basis in bases]

    def fit(residual: np.ndarray) -> np.ndarray:
        delta = along_axes(np.where(mask, residual / weight_sum, 0.0), cubes)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(omega != 0, delta / omega, 0.0)
    return fit


def refine(lattice: np.ndarray) -> np.ndarray:
    """The same spline on a lattice of twice the resolution (cubic B-spline subdivision)."""
    return along_axes(lattice, [subdivision_matrix(count) for count in lattice.shape])


def subdivision_matrix(count: int) -> np.ndarray:
    """(2 count - 3, count): the control points of one axis at twice the resolution."""
    matrix = np.zeros((2 * count - SPLINE_ORDER, count))
    for index in range(count - 1):  # a new point halfway between two old ones
        matrix[2 * index, index:index + 2] = 0.5
    for index in range(count - 2):  # a new point on an old one
        matrix[2 * index + 1, index:index + 3] = 0.125, 0.75, 0.125
    return matrix


def sharpen(values: np.ndarray) -> np.ndarray:
    """Sharpen the intensity histogram of the log image: the expected true intensity of each value,
    given a Gaussian bias blur of the histogram, removed by a Wiener filter.

    `values` are in the voxel order of the image, because ITK's histogram range has a quirk that
    depends on it: a value only lowers the minimum if it did not raise the running maximum."""
    running_maximum = np.maximum.accumulate(values)
    raised_maximum = np.r_[True, values[1:] > running_maximum[:-1]]
    lowest = values[~raised_maximum].min() if (~raised_maximum).any() else values.min()
    slope = (values.max() - lowest) / (HISTOGRAM_BINS - 1)
    if slope <= 0:  # a flat image has no histogram to sharpen
        return values

    position = (values - lowest) / slope
    index = np.floor(position).astype(np.int64)
    offset = position - index
    exact = (offset == 0) & (index >= 0)  # each value is shared between its two nearest bins
    split = ~exact & (index >= 0) & (index < HISTOGRAM_BINS - 1)
    histogram = (np.bincount(index[exact], minlength=HISTOGRAM_BINS)
                 + np.bincount(index[split], 1 - offset[split], HISTOGRAM_BINS)
                 + np.bincount(index[split] + 1, offset[split], HISTOGRAM_BINS + 1)[:HISTOGRAM_BINS])

    padded_size = 2 ** (int(np.ceil(np.log2(HISTOGRAM_BINS))) + 1)
    start = (padded_size - HISTOGRAM_BINS) // 2
    padded = np.zeros(padded_size)
    padded[start:start + HISTOGRAM_BINS] = histogram

    fwhm = BIAS_FWHM / slope
    distance = np.minimum(np.arange(padded_size), padded_size - np.arange(padded_size))
    gaussian = 2 * np.sqrt(np.log(2) / np.pi) / fwhm * np.exp(-distance ** 2 * 4 * np.log(2) / fwhm ** 2)
    gaussian_f = np.fft.fft(gaussian)
    wiener = (np.conj(gaussian_f) / (np.conj(gaussian_f) * gaussian_f + WIENER_NOISE)).real
    unblurred = np.maximum(np.fft.ifft(np.fft.fft(padded) * wiener).real, 0)

    centres = lowest + (np.arange(padded_size) - start) * slope
    numerator = np.fft.ifft(np.fft.fft(centres * unblurred) * gaussian_f).real
    denominator = np.fft.ifft(np.fft.fft(unblurred) * gaussian_f).real
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(denominator != 0, numerator / denominator, 0.0)
    expected = expected[start:start + HISTOGRAM_BINS]

    inside = (index >= 0) & (index < HISTOGRAM_BINS - 1)
    safe = np.where(inside, index, 0)
    interpolated = expected[safe] + (expected[safe + 1] - expected[safe]) * (position - safe)
    return np.where(inside, interpolated, expected[-1])


def coefficient_of_variation_change(old: np.ndarray, new: np.ndarray) -> float:
    """ITK's convergence measure: spread over mean of the multiplicative field change."""
    change = np.exp(old - new)
    return float(change.std(ddof=1) / change.mean())


def fit_log_bias_lattice(image: np.ndarray, mask: np.ndarray, iterations: Sequence[int],
                         convergence: float) -> np.ndarray:
    """Control points of the log bias field of a (z, y, x) image inside a boolean mask.

    `iterations` gives the most iterations at each fitting level; a level also stops once the
    field changes by less than `convergence` (coefficient of variation) in an iteration."""
    image = image.astype(np.float64)
    log_image = np.where(mask & (image > 0), np.log(np.where(image > 0, image, 1)), image)
    log_bias = np.zeros_like(log_image)
    lattice = np.zeros((CONTROL_POINTS,) * 3)
    for level, level_iterations in enumerate(iterations):
        bases = grid_bases(image.shape, lattice.shape)
        fit = level_fitter(mask, bases)
        change = np.inf
        for _ in range(level_iterations):
            if change <= convergence:
                break
            uncorrected = (log_image - log_bias)[mask]
            residual = np.zeros_like(log_image)
            residual[mask] = uncorrected - sharpen(uncorrected)
            lattice = lattice + fit(residual)
            new_log_bias = evaluate(lattice, bases)
            change = coefficient_of_variation_change(log_bias[mask], new_log_bias[mask])
            log_bias = new_log_bias
        if level < len(iterations) - 1:
            lattice = refine(lattice)
    return lattice


def log_bias_field(lattice: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The log bias field of a fitted lattice on a (z, y, x) grid of the fit's field of view."""
    return evaluate(lattice, grid_bases(shape, lattice.shape))

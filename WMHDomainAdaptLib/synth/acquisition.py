"""Acquisition: from a 1 mm signal to what a scanner stores.

Order matters and follows the physics: the slice profile and the acquisition point-spread function
act on the object; the bias field (receive coil sensitivity) multiplies it; thermal noise is added
to the complex signal; the reconstruction filter, when a protocol has one, acts on the complex
data (so it smooths the noise too, unlike the PSF); the magnitude makes the noise Rician; the
intensity response and the scanner gain come last, and the result is stored as int16.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import legendre
from scipy import ndimage as ndi

from .anatomy import Anatomy
from .domains import Domain, T1Protocol
from .fields import apply_separable, gaussian_matrix, slab_matrix

SLICE_EDGE_MM = 0.5  # Gaussian edge of the RF slice profile
BIAS_ORDER = 3
BIAS_RADIUS_MM = 90.0  # the polynomial's [-1, 1] spans this radius about the brain's centre
CSF_FLOW_INFLOW = (0.25, 0.45)  # fraction of CSF in an artefact that escaped the inversion
CSF_FLOW_RADIUS_MM = (2.0, 5.0)


def flair_operators(shape: tuple[int, int, int], domain: Domain, thickness: float,
                    psf: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(z, y, x) matrices from the 1 mm grid to the FLAIR grid: slab averaging along z,
    1.2 mm voxels along y, the in-plane PSF when `psf` (labels and tissue maps use no PSF)."""
    sigma = domain.psf_sigma_mm if psf else 0.0
    spacing_x, spacing_y, spacing_z = domain.flair_spacing
    return (slab_matrix(shape[0], spacing_z, thickness, SLICE_EDGE_MM),
            slab_matrix(shape[1], spacing_y, spacing_y, 0.0, sigma),
            gaussian_matrix(shape[2], sigma / spacing_x))


def log_bias(axes_mm: tuple[np.ndarray, np.ndarray, np.ndarray], sigma: float,
             rng: np.random.Generator) -> np.ndarray:
    """sum_{i+j+k<=3} c_ijk P_i(z) P_j(y) P_k(x), c ~ N(0, sigma), no constant term."""
    size = BIAS_ORDER + 1
    coefficients = rng.normal(0.0, sigma, (size, size, size))
    order = np.add.outer(np.add.outer(np.arange(size), np.arange(size)), np.arange(size))
    coefficients[order > BIAS_ORDER] = 0.0
    coefficients[0, 0, 0] = 0.0
    bases = [legendre.legvander(np.clip(a / BIAS_RADIUS_MM, -1.5, 1.5), BIAS_ORDER) for a in axes_mm]
    return np.einsum("zi,yj,xk,ijk->zyx", *bases, coefficients, optimize=True).astype(np.float32)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator,
           recon_sigma_px: tuple[float, float] | None = None) -> np.ndarray:
    """|signal + n1 + i n2|; a reconstruction filter (y, x pixels) smooths both channels first."""
    real = signal + rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    imaginary = rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    if recon_sigma_px is not None:
        real = ndi.gaussian_filter(real, (0.0, *recon_sigma_px), mode="nearest")
        imaginary = ndi.gaussian_filter(imaginary, (0.0, *recon_sigma_px), mode="nearest")
    return np.hypot(real, imaginary)


def soft_knee(image: np.ndarray, knee: float) -> np.ndarray:
    """knee (1 - e^(-x/knee)) in units of WM: linear for dark tissue, saturating for bright."""
    return (knee * -np.expm1(-image / knee)).astype(np.float32)


def to_int16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, np.iinfo(np.int16).max).astype(np.int16)


def csf_flow_map(anatomy: Anatomy, count: int, rng: np.random.Generator) -> np.ndarray:
    """Unlabelled inflow hyperintensities: smooth ellipsoids centred in the ventricles, stronger
    near the midline (the foramina and the third ventricle, where CSF flow is fastest)."""
    inflow = np.zeros(anatomy.csf.shape, dtype=np.float32)
    voxels = np.argwhere(anatomy.ventricles)
    if count == 0 or voxels.size == 0:
        return inflow
    medial = np.exp(-np.abs(voxels[:, 2] - voxels[:, 2].mean()) / 8.0)
    centres = voxels[rng.choice(len(voxels), count, p=medial / medial.sum())]
    shape = np.array(inflow.shape)
    for centre in centres:
        radii = rng.uniform(*CSF_FLOW_RADIUS_MM, 3)
        strength = rng.uniform(*CSF_FLOW_INFLOW)
        half = int(np.ceil(2.5 * radii.max()))
        low, high = np.maximum(centre - half, 0), np.minimum(centre + half + 1, shape)
        axes = [(np.arange(a, b) - c) / r for a, b, c, r in zip(low, high, centre, radii)]
        distance2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
        box = tuple(slice(a, b) for a, b in zip(low, high))
        inflow[box] += strength * np.exp(-distance2).astype(np.float32)
    return np.clip(inflow, 0.0, 1.0)


def acquire_flair(signal: np.ndarray, wm_level: float, domain: Domain, thickness: float,
                  axes_mm: tuple[np.ndarray, np.ndarray, np.ndarray],
                  rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The 1 mm FLAIR signal -> int16 on the domain's FLAIR grid; `axes_mm` are the FLAIR
    grid's voxel centres (z, y, x) relative to the brain centre, for the bias field."""
    image = apply_separable(signal, flair_operators(signal.shape, domain, thickness)) / wm_level
    image *= np.exp(log_bias(axes_mm, domain.bias_sigma, rng))
    snr = float(rng.uniform(*domain.snr))
    recon = None
    if domain.recon_sigma_mm > 0:
        recon = (domain.recon_sigma_mm / domain.flair_spacing[1],
                 domain.recon_sigma_mm / domain.flair_spacing[0])
    image = rician(image, 1.0 / snr, rng, recon)
    info = {"snr": round(snr, 3), "slice_thickness_mm": round(thickness, 3)}
    if domain.response_knee is not None:
        knee = float(rng.uniform(*domain.response_knee))
        image = soft_knee(image, knee) / float(soft_knee(np.float32(1.0), knee))
        info["response_knee"] = round(knee, 4)
    gain = float(rng.uniform(*domain.gain))
    info["gain"] = round(gain, 2)
    return to_int16(image * gain), info


def acquire_t1(image: np.ndarray, protocol: T1Protocol,
               axes_mm: tuple[np.ndarray, np.ndarray, np.ndarray],
               rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The 1 mm T1 -> int16: bias, Rician noise, scanner gain (no resampling: it stays 1 mm)."""
    image = image / protocol.wm * np.exp(log_bias(axes_mm, protocol.bias_sigma, rng))
    snr = float(rng.uniform(*protocol.snr))
    image = rician(image, 1.0 / snr, rng)
    gain = float(rng.uniform(*protocol.gain))
    return to_int16(image * gain), {"t1_snr": round(snr, 3), "t1_gain": round(gain, 2)}

"""Small T1 + FLAIR phantoms for fast tests: an ellipsoid 'brain' with bright FLAIR blobs.

Not the benchmark (see WMHDomainAdaptLib.synth): just enough structure for a network to learn
in seconds, on oblique, anisotropic grids, written with real SimpleITK I/O.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from WMHDomainAdaptLib.dataset import Case

OBLIQUE = (0.9848077, -0.1736482, 0.0, 0.1736482, 0.9848077, 0.0, 0.0, 0.0, 1.0)  # 10 degrees about z


def phantom_arrays(seed: int, shape=(12, 48, 40), lesion_gain: float = 1.8):
    """(t1, flair, label) arrays (z, y, x); lesions are blobs in the 'white matter'."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius = np.sqrt((x / 0.85) ** 2 + (y / 0.9) ** 2 + (z / 1.1) ** 2)
    brain, white = radius < 1.0, radius < 0.65
    label = np.zeros(shape, np.uint8)
    for _ in range(rng.integers(3, 7)):
        centre = rng.uniform(-0.5, 0.5, 3)
        size = rng.uniform(0.08, 0.18)
        blob = ((z - centre[0]) ** 2 / 4 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) < size ** 2
        label[blob & white] = 1
    noise = rng.normal(0, 0.04, (2, *shape))
    t1 = np.where(brain, np.where(white, 1.0, 0.75), 0.0) + noise[0] * brain
    flair = np.where(brain, np.where(white, 0.6, 0.7), 0.0)
    flair = np.where(label == 1, 0.6 * lesion_gain, flair) + noise[1] * brain
    return (100 * t1).astype(np.float32), (100 * flair).astype(np.float32), label


def phantom_image(array: np.ndarray, spacing=(1.0, 1.2, 3.0), direction=OBLIQUE,
                  origin=(-20.0, 15.0, 7.5)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    image.SetOrigin(origin)
    return image


def write_phantom_case(folder: Path, seed: int, suffix: str = ".nii.gz", **kwargs) -> Case:
    """Write one phantom case (T1, FLAIR, WMH label on one oblique anisotropic grid)."""
    t1, flair, label = phantom_arrays(seed, **kwargs)
    case_id = f"phantom{seed:03d}"
    folder = Path(folder) / case_id
    folder.mkdir(parents=True, exist_ok=True)
    paths = {role: folder / f"{case_id}_{role}{suffix}" for role in ("t1", "flair", "wmh")}
    for role, array in zip(("t1", "flair", "wmh"), (t1, flair, label)):
        sitk.WriteImage(phantom_image(array), str(paths[role]), True)
    return Case(case_id, paths["t1"], paths["flair"], paths["wmh"])


def save_tiny_model(path: Path, seed: int = 0, **training) -> Path:
    """An untrained network with a fixed seed, saved as a model file (no N4: fast to run)."""
    import torch

    from WMHDomainAdaptLib.model import WMHNet
    from WMHDomainAdaptLib.modelfile import build_metadata, save_model
    from WMHDomainAdaptLib.preprocess import PreprocessConfig

    torch.manual_seed(seed)
    network = WMHNet()
    metadata = build_metadata(network, PreprocessConfig(n4=False), 0.5, {"domain": "source", **training})
    return save_model(path, network, metadata)

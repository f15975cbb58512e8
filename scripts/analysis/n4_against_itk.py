"""Does our NumPy N4 (`n4.py`) change what a model segments, against ITK's N4 filter?

Each scan is preprocessed twice, with the library's N4 and with SimpleITK's
`N4BiasFieldCorrectionImageFilter` on the same shrunk grid and settings, then segmented with the
model both ways. Per scan it prints both Dice scores, how many mask voxels differ, the largest
z-score change and the library's preprocessing time; then the means.

    python scripts/analysis/n4_against_itk.py --model Resources/Models/wmh_source_synthetic.safetensors \
        --cases data/standard/source_test/manifest.csv data/standard/target_test/manifest.csv
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import SimpleITK as sitk

from WMHDomainAdaptLib import preprocess as pp
from WMHDomainAdaptLib.cases import PreparedCase
from WMHDomainAdaptLib.dataset import load_cases
from WMHDomainAdaptLib.inference import segment_prepared
from WMHDomainAdaptLib.io import image_like, read_image
from WMHDomainAdaptLib.metrics import dice
from WMHDomainAdaptLib.modelfile import load_model


def itk_n4_correct(image: sitk.Image, mask: np.ndarray, config: pp.PreprocessConfig) -> np.ndarray:
    """What `preprocess.n4_correct` computed before commit 0a3a446, with ITK's filter."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    shrink = [max(1, min(config.n4_shrink, size // 8)) for size in image.GetSize()]
    small = sitk.Shrink(image, shrink)
    small_mask = sitk.Shrink(image_like(mask.astype(np.uint8), image), shrink)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([config.n4_iterations] * 4)
    corrector.SetConvergenceThreshold(config.n4_convergence)
    corrector.Execute(small + 1e-3, small_mask)
    return sitk.GetArrayFromImage(image / sitk.Exp(corrector.GetLogBiasFieldAsImage(image)))


def with_itk_n4(t1: sitk.Image, flair: sitk.Image, ours: pp.Preprocessed,
                config: pp.PreprocessConfig) -> pp.Preprocessed:
    """The same preprocessing as `ours` (same brain mask), with ITK's N4."""
    t1_on_grid, _ = pp.t1_on_flair_grid(t1, flair, config)
    arrays = {"t1": itk_n4_correct(t1_on_grid, ours.brain_mask, config),
              "flair": itk_n4_correct(flair, ours.brain_mask, config)}
    image = np.stack([pp.zscore(arrays[name], ours.brain_mask, config.clip) for name in config.channels])
    return pp.Preprocessed(image, ours.brain_mask, flair)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--cases", nargs="+", required=True, help="manifests or folders with labels")
    args = parser.parse_args()
    model = load_model(args.model, "cpu")
    config = model.preprocess_config
    rows = []
    for manifest in args.cases:
        for case in load_cases(manifest):
            t1, flair = read_image(case.t1, "T1"), read_image(case.flair, "FLAIR")
            label = sitk.GetArrayFromImage(read_image(case.label, "label")) == 1
            began = time.perf_counter()
            ours = pp.preprocess(t1, flair, config)
            seconds = time.perf_counter() - began
            itk = with_itk_n4(t1, flair, ours, config)
            masks = [sitk.GetArrayFromImage(segment_prepared(model, PreparedCase.of(case.case_id, prepared),
                                                             "cpu").mask) > 0 for prepared in (itk, ours)]
            rows.append((dice(masks[0], label), dice(masks[1], label), int((masks[0] != masks[1]).sum()),
                         float(np.abs(itk.image - ours.image).max()), seconds))
            print(f"{case.case_id}: Dice with ITK's N4 {rows[-1][0]:.4f}, ours {rows[-1][1]:.4f}; "
                  f"{rows[-1][2]} mask voxels differ; largest z-score change {rows[-1][3]:.1e}; "
                  f"preprocessing {seconds:.2f} s", flush=True)
    itk_dice, our_dice, voxels, _, seconds = np.array(rows).T
    print(f"{len(rows)} scans: mean Dice with ITK's N4 {itk_dice.mean():.4f}, ours {our_dice.mean():.4f}; "
          f"largest change of a scan's Dice {np.abs(itk_dice - our_dice).max():.4f}; "
          f"{int(voxels.sum())} mask voxels differ in all; preprocessing {seconds.mean():.2f} s a scan")


if __name__ == "__main__":
    main()

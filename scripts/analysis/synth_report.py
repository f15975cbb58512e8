"""Measure the synthetic domains and draw docs/domains.png (the figures in docs/benchmark.md).

    .venv/bin/python scripts/analysis/synth_report.py --seeds 0,1,2,3 --fov full --png docs/domains.png

Prints, per domain, the median over subjects of the FLAIR's lesion/WM, GM/WM and CSF/WM medians
on the generated images (with the bias field, and with it switched off: the protocol's own
contrast), the T1 lesion contrast, and the generation time per subject (template cached).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from WMHDomainAdaptLib.preprocess import PreprocessConfig, preprocess  # noqa: E402
from WMHDomainAdaptLib.synth import DOMAINS, generate_subject  # noqa: E402
from WMHDomainAdaptLib.synth.contrast import analytic_ratios  # noqa: E402
from WMHDomainAdaptLib.synth.measure import flair_contrasts, t1_contrasts  # noqa: E402


def measure(seeds: list[int], fov: str) -> dict:
    results = {}
    for name, domain in DOMAINS.items():
        rows, seconds = [], []
        for seed in seeds:
            biased = generate_subject(domain, seed, f"sub{seed:03d}", fov, keep_maps=True)
            flat = generate_subject(dataclasses.replace(domain, bias_sigma=0.0), seed,
                                    f"sub{seed:03d}", fov, keep_maps=True)
            seconds.append(biased.seconds)
            row = {f"{k} (bias off)": v for k, v in flair_contrasts(flat).items()}
            row.update(flair_contrasts(biased))
            row.update(t1_contrasts(biased))
            row["label mL"] = biased.info["label_ml"]
            rows.append(row)
            print(name, seed, {k: round(v, 3) for k, v in row.items()}, f"{biased.seconds:.1f}s",
                  file=sys.stderr)
        results[name] = {"median": {k: float(np.nanmedian([r[k] for r in rows])) for k in rows[0]},
                         "range": {k: [float(np.nanmin([r[k] for r in rows])),
                                       float(np.nanmax([r[k] for r in rows]))] for k in rows[0]},
                         "analytic": analytic_ratios(domain.sequence),
                         "seconds": seconds}
    results["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return results


def _dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(2 * (prediction & truth).sum() / max(prediction.sum() + truth.sum(), 1))


def threshold_probe(seeds: list[int], fov: str) -> dict:
    """A voxel-threshold "model" on the preprocessed FLAIR z-score (the project's standard
    preprocessing): the threshold best on the source, applied to every domain, against each
    domain's own best threshold (pooled Dice). A crude look at the intensity shift only."""
    pooled, zscores = {}, {}
    for name in DOMAINS:
        values, labels, medians = [], [], []
        for seed in seeds:
            subject = generate_subject(name, seed, f"sub{seed:03d}", fov, keep_maps=True)
            prepared = preprocess(subject.t1, subject.flair, PreprocessConfig())
            mask = prepared.brain_mask
            label = sitk.GetArrayFromImage(subject.label) > 0
            values.append(prepared.image[1][mask])
            labels.append(label[mask])
            tissues = (label, (subject.maps["wm"] > 0.9) & ~label & mask,
                       (subject.maps["gm"] > 0.8) & ~label & mask)
            medians.append([np.median(prepared.image[c][t]) for c in (1, 0) for t in tissues])
        pooled[name] = (np.concatenate(values), np.concatenate(labels))
        zscores[name] = dict(zip(["flair lesion", "flair wm", "flair gm", "t1 lesion", "t1 wm", "t1 gm"],
                                 np.median(medians, axis=0).round(3).tolist()))
    thresholds = np.arange(0.5, 5.0, 0.05)
    best = {name: float(thresholds[np.argmax([_dice(v > t, lab) for t in thresholds])])
            for name, (v, lab) in pooled.items()}
    return {name: {"own_threshold": best[name], "own_dice": _dice(v > best[name], lab),
                   "source_threshold_dice": _dice(v > best["source"], lab), "zscores": zscores[name]}
            for name, (v, lab) in pooled.items()}


def _window(image: np.ndarray) -> tuple[float, float]:
    inside = image[image > np.percentile(image, 50)]
    return 0.0, float(np.percentile(inside, 99.5)) if inside.size else float(image.max() or 1)


def draw(seed: int, fov: str, path: str) -> None:
    """Axial and coronal FLAIR of one brain scanned with each protocol, WMH label outlined."""
    figure, axes = plt.subplots(2, 4, figsize=(12, 6.4), gridspec_kw={"width_ratios": [1, 1, 1, 1]})
    for column, name in enumerate(DOMAINS):
        subject = generate_subject(name, seed, f"sub{seed:03d}", fov)
        flair = sitk.GetArrayFromImage(subject.flair).astype(np.float32)
        label = sitk.GetArrayFromImage(subject.label)
        spacing_x, spacing_y, spacing_z = subject.flair.GetSpacing()
        z = int(np.argmax(label.sum(axis=(1, 2)))) if label.any() else flair.shape[0] // 2
        y = int(np.argmax(label.sum(axis=(0, 2)))) if label.any() else flair.shape[1] // 2
        low, high = _window(flair)
        views = ((flair[z], label[z], spacing_y / spacing_x, f"axial, slice {z}"),
                 (flair[:, y], label[:, y], spacing_z / spacing_x, "coronal"))
        for row, (image, outline, aspect, view) in enumerate(views):
            axis = axes[row, column]
            axis.imshow(image, cmap="gray", origin="lower", vmin=low, vmax=high, aspect=aspect,
                        interpolation="nearest")
            if outline.any():
                axis.contour(outline, [0.5], colors="#ff3030", linewidths=0.6)
            axis.set_title(f"{name} FLAIR {spacing_x:g}x{spacing_y:g}x{spacing_z:g} mm\n{view}", fontsize=8)
            axis.axis("off")
        if column == 0:
            t1 = sitk.GetArrayFromImage(subject.t1).astype(np.float32)
            t1_z = min(int(round((z + 0.5) * spacing_z - 0.5)), t1.shape[0] - 1)
            axes[0, 3].imshow(t1[t1_z], cmap="gray", origin="lower", interpolation="nearest")
            axes[0, 3].set_title("source T1 1 mm (same slab)", fontsize=8)
            axes[0, 3].axis("off")
        if name == "target":
            t1 = sitk.GetArrayFromImage(subject.t1).astype(np.float32)
            t1_z = min(int(round((z + 0.5) * spacing_z - 0.5)), t1.shape[0] - 1)
            axes[1, 3].imshow(t1[t1_z], cmap="gray", origin="lower", interpolation="nearest")
            axes[1, 3].set_title("target T1 1 mm (MPRAGE-like)", fontsize=8)
            axes[1, 3].axis("off")
    figure.suptitle(f"One synthetic brain (seed {seed}) scanned with the three protocols; red: WMH label",
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--fov", default="full")
    parser.add_argument("--png", default=None, help="also draw the figure (first seed) here")
    parser.add_argument("--json", default=None, help="write the measurements here")
    parser.add_argument("--probe", action="store_true", help="also run the FLAIR-threshold probe")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = measure(seeds, args.fov)
    if args.probe:
        results["threshold_probe"] = threshold_probe(seeds, args.fov)
    text = json.dumps(results, indent=1)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text)
    print(text)
    if args.png:
        draw(seeds[0], args.fov, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())

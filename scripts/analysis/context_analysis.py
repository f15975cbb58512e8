"""Would through-plane context help a 2D model? A test that trains no network.

A gradient-boosted classifier relabels the model's uncertain voxels (probability 0.05 to 0.95) from
(A) the model's logit and the voxel's own T1 and FLAIR, or (B) the same plus the FLAIR and the
model's probability in the slices above and below (the voxel and the mean and maximum of its
3 x 3 neighbourhood). It is fitted on half of the scans and scored on the other half, then the
halves swap. The figure is the mean Dice per scan, with the model's own decision everywhere else.
If (B) beats (A), the neighbouring slices hold information the 2D model does not use.

    python scripts/analysis/context_analysis.py --model M --cases data/standard/source_val/manifest.csv \
        data/source_val_extra/manifest.csv

Needs scikit-learn (installed with the `synth` extra, through nilearn).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy import ndimage
from sklearn.ensemble import HistGradientBoostingClassifier

from WMHDomainAdaptLib import metrics
from WMHDomainAdaptLib.cases import prepare_cases
from WMHDomainAdaptLib.dataset import load_datasets
from WMHDomainAdaptLib.decision import decide
from WMHDomainAdaptLib.inference import predict_probability
from WMHDomainAdaptLib.lesions import components
from WMHDomainAdaptLib.modelfile import load_model
from WMHDomainAdaptLib.network_input import slices_with_context


def features(image: np.ndarray, probability: np.ndarray, with_context: bool) -> np.ndarray:
    clipped = np.clip(probability, 1e-4, 1 - 1e-4)
    t1, flair = image[:2]
    columns = [np.log(clipped / (1 - clipped)), t1, flair]
    if with_context:
        for volume in (flair, probability):
            neighbours = slices_with_context(volume[None], np.arange(len(volume)), 1)[:, 1:]
            for shifted in neighbours.transpose(1, 0, 2, 3):  # slices z-1 and z+1
                columns += [shifted, ndimage.uniform_filter(shifted, (1, 3, 3)),
                            ndimage.maximum_filter(shifted, (1, 3, 3))]
    return np.stack(columns, -1)


def dice(prediction: np.ndarray, label: np.ndarray) -> float:
    """The challenge's Dice: voxels labelled 2 (other pathology) are ignored."""
    return metrics.dice(prediction & (label != 2), label == 1)


def error_split(prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Voxels missed in lesions found, missed in lesions missed, added at lesions, added apart."""
    truth, prediction = label == 1, prediction & (label != 2)
    lesions, _ = components(truth)
    found = np.unique(lesions[prediction])
    missed_whole = truth & ~np.isin(lesions, found[found > 0])
    blobs, _ = components(prediction)
    touching = np.unique(blobs[truth])
    added_apart = prediction & ~np.isin(blobs, touching[touching > 0])
    missed, added = truth & ~prediction, prediction & ~truth
    return np.array([(missed & ~missed_whole).sum(), missed_whole.sum(),
                     (added & ~added_apart).sum(), added_apart.sum()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--cases", required=True, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    if model.preprocess_config.context_slices:
        raise SystemExit("this asks whether a 2D model lacks context: give a model without --context-slices")
    cases = prepare_cases(load_datasets(args.cases), model.preprocess_config, need_label=True)
    cpu = torch.device("cpu")
    probabilities = [predict_probability(model.network, model.input_spec, c, cpu) for c in cases]
    decisions = [decide(p, model.flair_of(c.image), model.cut, c.spacing_xyz).mask
                 for p, c in zip(probabilities, cases)]
    errors = sum(error_split(d, c.label) for d, c in zip(decisions, cases))
    print("wrong voxels: missed at the edge of found lesions {}, in lesions missed entirely {}, "
          "added at lesions {}, in false lesions {}".format(*errors))
    uncertain = [c.brain_mask & (p >= 0.05) & (p <= 0.95) & (c.label != 2)
                 for p, c in zip(probabilities, cases)]
    halves = [list(range(0, len(cases), 2)), list(range(1, len(cases), 2))]
    alone = [dice(d, c.label) for d, c in zip(decisions, cases)]
    print(f"model alone: mean Dice {np.mean(alone):.4f}")
    for with_context in (False, True):
        table = [features(c.image, p, with_context)[u]
                 for c, p, u in zip(cases, probabilities, uncertain)]
        scores = []
        for fit, score in (halves, halves[::-1]):
            classifier = HistGradientBoostingClassifier(max_iter=200, random_state=0).fit(
                np.concatenate([table[i] for i in fit]),
                np.concatenate([(cases[i].label == 1)[uncertain[i]] for i in fit]))
            for i in score:
                relabelled = decisions[i].copy()
                relabelled[uncertain[i]] = classifier.predict_proba(table[i])[:, 1] >= 0.5
                scores.append(dice(relabelled, cases[i].label))
        name = "own voxel + neighbouring slices" if with_context else "own voxel only"
        print(f"relabelled from the {name}: mean Dice {np.mean(scores):.4f} over {len(scores)} scans")


if __name__ == "__main__":
    main()

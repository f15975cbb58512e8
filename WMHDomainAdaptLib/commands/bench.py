"""`wmhda bench`: speed and memory figures (printed, not asserted).

`bench segment` times one scan end to end and splits the time into reading, preprocessing,
inference and writing; `bench adapt` times an adaptation with and without the feature cache;
`bench step` times one training step of the source recipe (what a training run repeats);
`bench cohort` segments a set of cases with today's single process and on 1, 2, ... local Dask
workers, in one run, and prints scans per minute, the ratio, peak memory per worker and the
overhead of a task. Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from ..adaptation import AdaptConfig, adapt
from ..cases import PreparedCase
from ..dataset import load_cases
from ..devices import resolve_device
from ..errors import InputError
from ..inference import predict_probability, segment_prepared
from ..io import read_image, write_image
from ..modelfile import load_model
from ..preprocess import preprocess
from ..training import TrainConfig, make_optimizer, train_step
from ._common import add_device_argument, at_least

NAME = "bench"
HELP = "print speed and memory figures for segmentation and adaptation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["segment", "adapt", "step", "cohort"])
    parser.add_argument("--model", required=True, help="model file")
    parser.add_argument("--cases", help="manifest or folder; segment uses the first case, adapt the first "
                                        "--n cases (step needs none)")
    parser.add_argument("--n", type=at_least(1), default=2, help="adapt: number of scans (default 2)")
    parser.add_argument("--tune-layers", type=at_least(1), default=3, help="adapt: K (default 3)")
    parser.add_argument("--repeats", type=at_least(1), default=3, help="segment: timed repeats (default 3); "
                                                                "step: timed steps = 10 x repeats")
    parser.add_argument("--workers", default="1,2", help="cohort: local worker counts to time (default 1,2)")
    add_device_argument(parser)


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process, or of its largest finished child process (NaN where
    the `resource` module is missing: Windows)."""
    try:
        import resource
    except ImportError:
        return float("nan")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss * scale / 2**20


def bench_segment(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    model = load_model(args.model, device)
    case = load_cases(args.cases)[0]
    predict_probability(model.network, model.input_spec, _warm_input(model, case), device)  # start-up
    rows = []
    for _ in range(args.repeats):
        times = {}
        began = time.perf_counter()
        t1, flair = read_image(case.t1, "T1"), read_image(case.flair, "FLAIR")
        times["read"] = time.perf_counter() - began
        mark = time.perf_counter()
        prepared = preprocess(t1, flair, model.preprocess_config)
        times["preprocess"] = time.perf_counter() - mark
        mark = time.perf_counter()
        result = segment_prepared(model, PreparedCase.of(case.case_id, prepared), device)
        times["inference"] = time.perf_counter() - mark
        mark = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            write_image(result.mask, Path(folder) / "mask.nii.gz")
            write_image(result.probability, Path(folder) / "prob.nii.gz")
        times["write"] = time.perf_counter() - mark
        times["total"] = time.perf_counter() - began
        rows.append(times)
    size = "x".join(map(str, flair.GetSize()))
    print(f"segment one scan ({case.case_id}, FLAIR {size}) on {device}, best of {args.repeats}:")
    best = min(rows, key=lambda r: r["total"])
    print("  " + "  ".join(f"{k} {v:.2f} s" for k, v in best.items()))
    print(f"  peak RSS {peak_rss_mb():.0f} MB")


def _warm_input(model, case) -> PreparedCase:
    """The first two slices of a case: enough to start torch up before anything is timed."""
    prepared = preprocess(read_image(case.t1), read_image(case.flair), model.preprocess_config)
    return PreparedCase.of(case.case_id, replace(prepared, image=prepared.image[:, :2],
                                                 brain_mask=prepared.brain_mask[:2]))


def bench_adapt(args: argparse.Namespace) -> None:
    cases = load_cases(args.cases)[: args.n]
    for cache in (True, False):
        began = time.perf_counter()
        result = adapt(args.model, cases, None, args.tune_layers, args.device, AdaptConfig(), cache=cache)
        seconds = time.perf_counter() - began
        training = result.metadata["training"]
        print(f"adapt N={len(cases)} K={args.tune_layers} cache={cache}: {seconds:.1f} s total "
              f"(training {result.train.seconds:.1f} s, {training['epochs_run']} epochs, held-out Dice "
              f"{training['best_val_dice']:.3f}), peak RSS {peak_rss_mb():.0f} MB")


def bench_step(args: argparse.Namespace) -> None:
    """One Adam step on a mini-batch of random patches: the unit a training run's time is made of."""
    device = resolve_device(args.device)
    network = load_model(args.model, device).network.train()
    config = TrainConfig()
    optimizer = make_optimizer(network, config)
    shape = (config.batch_size, network.architecture.in_channels, config.patch_size, config.patch_size)
    state = network.encode(torch.randn(shape, device=device), 0)
    labels = (torch.rand((shape[0], 1, *shape[2:]), device=device) > 0.9).to(torch.uint8)

    def steps(count: int) -> float:
        began = time.perf_counter()
        for _ in range(count):
            train_step(network, optimizer, 0, state, labels)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - began

    steps(3)  # warm-up
    count = 10 * args.repeats
    seconds = steps(count) / count
    print(f"training step (mini-batch {config.batch_size} of {config.patch_size}x{config.patch_size}) "
          f"on {device}: {seconds * 1000:.1f} ms, {torch.get_num_threads()} CPU threads")


def run(args: argparse.Namespace) -> int:
    if args.what != "step" and not args.cases:
        raise InputError("--cases", f"bench {args.what} needs --cases")
    if args.what == "cohort":
        from ._bench_cohort import bench_cohort
        bench_cohort(args)
        return 0
    {"segment": bench_segment, "adapt": bench_adapt, "step": bench_step}[args.what](args)
    return 0

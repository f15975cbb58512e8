"""`wmhda bench cohort`: today's single process against 1, 2, ... local Dask workers, in one run.

Each configuration segments the same cases into its own temporary folder, from a cold start (the
single process is a fresh `wmhda segment` child process; the cluster is started anew), so the
figures include what a user pays: start-up, model loading, every read and write.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..cluster import connect
from ..cohort import Settings, segment_cohort
from ..cohort_log import Job
from ..dataset import Case, load_cases
from ..errors import InputError
from .bench import peak_rss_mb

NO_OP_TASKS = 200


def single_process(args: argparse.Namespace, out: Path) -> tuple[float, float]:
    """Seconds and peak MB of `wmhda segment --cases` as a user runs it today."""
    command = [sys.executable, "-m", "WMHDomainAdaptLib", "segment", "--model", args.model,
               "--cases", args.cases, "--out-dir", str(out), "--device", args.device]
    if args.threads:
        command += ["--threads", str(args.threads)]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise InputError(args.cases, f"the single-process run failed: {last}")
    return seconds, peak_rss_mb(children=True)


def no_op(index: int) -> int:
    """A task that does nothing: what is left of its time is Dask's overhead."""
    return index


def on_cluster(args: argparse.Namespace, cases: list[Case], workers: int, out: Path) -> dict:
    jobs = [Job(case, out / f"{case.case_id}_wmh_pred.nii.gz") for case in cases]
    began = time.perf_counter()
    with connect(f"local:{workers}", args.threads) as (client, slots):
        client.wait_for_workers(workers)
        started = time.perf_counter()
        result = segment_cohort(client, slots, jobs, args.model, out, Settings(), args.device)
        segmenting = time.perf_counter() - started
        peaks = client.run(peak_rss_mb)
        mark = time.perf_counter()
        client.gather(client.map(no_op, range(NO_OP_TASKS), pure=False))
        per_task = (time.perf_counter() - mark) / NO_OP_TASKS
    failed = len(result.failed)
    if failed:
        raise InputError(args.cases, f"{failed} case(s) failed on the cluster; see {result.summary}")
    task_seconds = sum(record["seconds"] for record in result.records)
    return {"seconds": time.perf_counter() - began, "segmenting": segmenting, "peaks": sorted(peaks.values()),
            "per_task_ms": 1000 * per_task, "busy": task_seconds / (workers * segmenting),
            "torch_threads": slots.torch_threads}


def bench_cohort(args: argparse.Namespace) -> None:
    counts = [int(word) for word in args.workers.split(",") if word.strip()]
    cases = load_cases(args.cases)
    scans = len(cases)
    with tempfile.TemporaryDirectory() as folder:
        seconds, peak = single_process(args, Path(folder) / "single")
        base = scans / seconds * 60
        print(f"cohort of {scans} scans, model {Path(args.model).name}, this machine's cores: "
              f"{os.cpu_count()}")
        print(f"  single process (wmhda segment --cases): {seconds:.1f} s, {base:.1f} scans/min, "
              f"peak {peak:.0f} MB")
        for workers in counts:
            figures = on_cluster(args, cases, workers, Path(folder) / f"local{workers}")
            rate = scans / figures["seconds"] * 60
            peaks = ", ".join(f"{value:.0f}" for value in figures["peaks"])
            print(f"  local:{workers} ({figures['torch_threads']} torch thread(s) a worker): "
                  f"{figures['seconds']:.1f} s with start-up, {rate:.1f} scans/min = "
                  f"{rate / base:.2f} x the single process; segmenting {figures['segmenting']:.1f} s "
                  f"({scans / figures['segmenting'] * 60:.1f} scans/min), workers busy "
                  f"{100 * figures['busy']:.0f} %; peak per worker {peaks} MB; "
                  f"overhead {figures['per_task_ms']:.1f} ms a task")

"""`wmhda experiment`: the paper's study (source vs scratch vs fine-tuned over N and K), resumable.

Interrupt it at any time (Ctrl-C, a kill, a reboot) and run the same command again: finished runs
are skipped. `--report-only` rebuilds the report and the figures from the results table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..experiments.config import BUILT_IN, load_config, with_source_model
from ._common import add_device_argument, add_progress_argument, progress_printer

NAME = "experiment"
HELP = "reproduce the paper's study on a two-domain dataset: CSV, markdown report and two plots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help=f"experiment JSON file, or a built-in one: {', '.join(BUILT_IN)}")
    parser.add_argument("--data", default=None,
                        help="folder that relative dataset paths in the config start from (for the "
                             "built-in configs: the folder written by `wmhda synth --out`); "
                             "default: the config file's folder")
    parser.add_argument("--out", required=True, help="results folder (reuse it to resume)")
    parser.add_argument("--source-model", default=None,
                        help="use this source model file instead of training one (overrides the config)")
    parser.add_argument("--report-only", action="store_true",
                        help="only rebuild report.md and the figures from the results table")
    parser.add_argument("--cluster", help="run the grid on Dask: local:N, tcp://HOST:PORT or a .yaml "
                                          "cluster file (--out must be a folder all workers see)")
    add_device_argument(parser)
    add_progress_argument(parser)


def data_root(args: argparse.Namespace, config_path: Path) -> Path:
    if args.data is not None:
        root = Path(args.data)
        if not root.is_dir():
            raise InputError(root, "--data must be a folder (e.g. one written by `wmhda synth --out`)")
        return root
    if args.config in BUILT_IN:
        raise InputError("--data", f"the built-in config '{args.config}' needs --data: the benchmark "
                                   f"folder written by `wmhda synth --out DIR`")
    return config_path.parent


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401  (the report's figures)
    except ImportError:
        raise InputError("matplotlib", "`wmhda experiment` draws its figures with matplotlib, which is "
                                       "not installed: pip install 'wmhdomainadapt[plots]'") from None
    from ..experiments.report import write_report
    from ..experiments.runner import RESULTS_FILE, run_experiment

    out = Path(args.out)
    if args.report_only:
        if not (out / RESULTS_FILE).is_file():
            raise InputError(out, f"no {RESULTS_FILE} here to report on")
    else:
        config, path = load_config(args.config)
        if args.source_model is not None:
            config = with_source_model(config, str(Path(args.source_model).resolve()))
        if args.cluster:
            run_on_cluster(args, config, data_root(args, path), out)
        else:
            run_experiment(config, data_root(args, path), out, args.device, progress_printer(args))
    for written in write_report(out):
        print(f"wrote {written}")
    return 0


def run_on_cluster(args: argparse.Namespace, config, root: Path, out: Path) -> None:
    from ..cluster import connect
    from ..experiments.distributed import run_experiment_on_cluster

    with connect(args.cluster, args.threads) as (client, slots):
        run_experiment_on_cluster(client, slots, config, root, out, args.device, progress_printer(args))

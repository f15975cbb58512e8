"""Where distributed work runs: a Dask cluster named by one `--cluster` string.

Dask distributed (PyPI `distributed`) schedules the tasks, retries those of a worker that died and
runs the same way on a laptop, a set of machines or a batch queue; this module only turns the
user's words into a connected `Client`:

- `local:N`: N worker processes on this machine (a `LocalCluster`), one task at a time each;
- `tcp://HOST:PORT`: a scheduler started elsewhere (`dask scheduler` + `dask worker`);
- `FILE.yaml`: `scheduler: tcp://HOST:PORT`, or a batch queue through dask-jobqueue
  (`jobqueue: slurm`, `workers: 8`, `cluster: {cores: 4, memory: 16GB, ...}`; see docs/cohorts.md).

Every worker runs one task at a time, and each task sets torch's threads to its share of the
cores (`TaskSlots.torch_threads`), so that N workers on one machine do not oversubscribe it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

CONNECT_TIMEOUT_S = 5
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
LOCAL_PATTERN = re.compile(r"^local:(\d+)$")
JOBQUEUE_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster",
                    "lsf": "LSFCluster", "htcondor": "HTCondorCluster"}


@dataclass(frozen=True)
class TaskSlots:
    """How a task on a worker should use its machine: torch threads, and whether to ask for a GPU."""

    torch_threads: int
    gpu_resource: bool = False  # workers were started with `--resources GPU=1`: one task per GPU


def import_distributed():
    try:
        import distributed
    except ImportError:
        raise InputError("--cluster", "needs Dask distributed, which is not installed: "
                                      "pip install 'wmhdomainadapt[cluster]'") from None
    return distributed


def local_workers(spec: str) -> int | None:
    """N of `local:N`, or None for another kind of cluster."""
    match = LOCAL_PATTERN.match(spec)
    if not match:
        return None
    workers = int(match.group(1))
    if workers < 1:
        raise InputError("--cluster", f"local:N needs at least one worker, got {spec}")
    return workers


def read_cluster_file(path: Path) -> dict:
    import yaml  # a dependency of dask
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InputError(path, f"cannot read the cluster file ({str(error).splitlines()[0]})") from None
    if not isinstance(settings, dict) or not ({"scheduler", "jobqueue"} & settings.keys()):
        raise InputError(path, "a cluster file needs 'scheduler: tcp://HOST:PORT' or "
                               "'jobqueue: slurm|pbs|...'")
    return settings


@contextlib.contextmanager
def connect(spec: str, threads: int | None = None) -> Iterator[tuple[object, TaskSlots]]:
    """A connected Client and the task slots to use, for `local:N`, `tcp://...` or a YAML file.

    Nothing is written anywhere before the connection stands: an unreachable scheduler is an
    `InputError` after `CONNECT_TIMEOUT_S` seconds.
    """
    distributed = import_distributed()
    with contextlib.ExitStack() as stack:
        address = _start(spec, stack, distributed)
        client = _client(distributed, address, spec)
        stack.callback(client.close)
        yield client, _slots(client, spec, threads)


def _start(spec: str, stack: contextlib.ExitStack, distributed) -> object:
    """The scheduler address to connect to, starting a local or batch-queue cluster if asked."""
    workers = local_workers(spec)
    if workers is not None:
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
        stack.callback(cluster.close)
        return cluster
    if spec.startswith("tcp://"):
        return spec
    path = Path(spec)
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        raise InputError("--cluster", f"expected local:N, tcp://HOST:PORT or a .yaml file, got '{spec}'")
    settings = read_cluster_file(path)
    if "scheduler" in settings:
        return str(settings["scheduler"])
    return _start_jobqueue(path, settings, stack)


def _start_jobqueue(path: Path, settings: dict, stack: contextlib.ExitStack) -> object:
    """A SLURM/PBS/... cluster from dask-jobqueue, scaled to `workers` jobs (untested here: no queue)."""
    kind = str(settings["jobqueue"]).lower()
    if kind not in JOBQUEUE_CLASSES:
        raise InputError(path, f"jobqueue must be one of {', '.join(JOBQUEUE_CLASSES)}, got '{kind}'")
    try:
        import dask_jobqueue
    except ImportError:
        raise InputError(path, "a jobqueue cluster needs dask-jobqueue: pip install dask-jobqueue") from None
    cluster = getattr(dask_jobqueue, JOBQUEUE_CLASSES[kind])(**settings.get("cluster", {}))
    stack.callback(cluster.close)
    cluster.scale(jobs=int(settings.get("workers", 1)))
    return cluster


def _client(distributed, address, spec: str):
    try:
        return distributed.Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as error:
        raise InputError("--cluster", f"cannot reach the Dask scheduler at {spec} within "
                                      f"{CONNECT_TIMEOUT_S} s ({type(error).__name__}); nothing was "
                                      f"written") from None


def _slots(client, spec: str, threads: int | None) -> TaskSlots:
    """Torch threads per task: --threads if given, else this machine's cores shared by local
    workers, else one (remote workers' cores are unknown here; start them with --nthreads 1)."""
    workers = client.scheduler_info().get("workers", {})
    gpu = any("GPU" in worker.get("resources", {}) for worker in workers.values())
    if threads is None:
        local = local_workers(spec)
        threads = max(1, (os.cpu_count() or 1) // local) if local else 1
    return TaskSlots(torch_threads=threads, gpu_resource=gpu)


def submit_options(slots: TaskSlots) -> dict:
    """Keyword arguments for `client.submit`: a GPU each where workers declare them."""
    return {"resources": {"GPU": 1}} if slots.gpu_resource else {}


def undo_malloc_trim() -> None:
    """Give this worker process glibc's allocation speed back (Linux; elsewhere nothing to do).

    Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 so that freed memory goes back to
    the system; setting it also turns off glibc's adaptive mmap threshold, so every array over
    128 KiB is mapped and unmapped afresh. Inference then ran 2.3 times slower in a worker than in
    a plain process (5.0 s against 2.2 s a scan on this CPU). A fixed 32 MiB mmap threshold and a
    64 MiB trim threshold (glibc's adaptive ceiling) restore the plain process's speed (1.9 s).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl)
        return
    libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
    libc.mallopt(M_TRIM_THRESHOLD, 64 * 2**20)


def worker_name() -> str:
    """The address of the Dask worker running the current task ("local" outside a worker)."""
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return "local"

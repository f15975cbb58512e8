"""The worker process: `PythonSlicer -m WMHDomainAdaptLib segment|adapt ...` and its output.

Long work runs in a child process so the Slicer GUI never imports torch or blocks; a crash, an
out-of-memory kill or a cancel there cannot take Slicer down. A reader thread moves the child's
output lines into a queue; the GUI drains it from a timer (`drain`), scripts block in `wait`.
Cancel kills the whole process tree: killing only a launcher would leave the worker running.

Nothing here imports qt; the same class runs in CI with the test interpreter as "PythonSlicer".
"""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from WMHDomainAdaptLib.progress import ProgressEvent

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda|cuda:\d+|mps")  # what the library's --device takes
CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW = 0x00000200, 0x08000000  # Windows process creation flags
_FIELD = re.compile(r"""(\w+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)""")
_OUT_OF_MEMORY = re.compile(r"out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED", re.IGNORECASE)


def default_python() -> str:
    """PythonSlicer inside Slicer (the launcher puts it on PATH); this interpreter elsewhere."""
    found = shutil.which("PythonSlicer")
    return found or sys.executable


def library_parent() -> Path:
    """The folder holding the WMHDomainAdaptLib package, for the worker's PYTHONPATH."""
    import WMHDomainAdaptLib

    return Path(WMHDomainAdaptLib.__file__).resolve().parent.parent


def worker_environment(device: str = "auto", base: dict | None = None) -> dict:
    """Environment for the child: the library importable, output unbuffered, CPU forced if asked.

    With CPU chosen, CUDA is hidden entirely, so a CUDA build of torch on a machine with a broken
    driver never even initializes it.
    """
    env = dict(os.environ if base is None else base)
    paths = [str(library_parent())] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    return env


def check_device(device: str) -> str:
    if not DEVICE_PATTERN.fullmatch(device or ""):
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got '{device}'")
    return device


def popen_options(os_name: str = os.name) -> dict:
    """How the child starts: its own process group (so cancel reaches all of it), no console window.

    On Windows a console program started from a GUI opens a console window unless told not to;
    CREATE_NO_WINDOW is what Slicer's own `launchConsoleProcess` achieves with STARTUPINFO.
    """
    if os_name == "nt":
        return {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}
    return {"start_new_session": True}


def devices_command(python: str) -> list[str]:
    return library_command(python, "devices", "--json")


def parse_devices(log: Sequence[str]) -> list[tuple[str, str]]:
    """(key, label) pairs from `wmhda devices --json` output; CPU alone if it printed none."""
    for line in reversed(log):
        if line.startswith("["):
            try:
                return [(str(entry["key"]), str(entry["label"])) for entry in json.loads(line)]
            except (ValueError, KeyError, TypeError):
                break
    return [("cpu", "CPU")]


def library_command(python: str, *args: str) -> list[str]:
    return [str(python), "-m", "WMHDomainAdaptLib", *[str(a) for a in args]]


def segment_command(python: str, model: Path, t1: Path, flair: Path, out: Path,
                    probability: Path | None = None, device: str = "auto") -> list[str]:
    args = ["segment", "--model", model, "--t1", t1, "--flair", flair, "--out", out,
            "--device", check_device(device), "--progress-lines"]
    if probability is not None:
        args += ["--prob", probability]
    return library_command(python, *args)


def adapt_command(python: str, model: Path, cases: Path, out: Path, tune_layers: int | str = "auto",
                  device: str = "auto", extra: Sequence[str] = ()) -> list[str]:
    if tune_layers != "auto" and not (isinstance(tune_layers, int) and tune_layers >= 1):
        raise ValueError(f"tuned layers must be 'auto' or a positive number, got {tune_layers!r}")
    return library_command(python, "adapt", "--model", model, "--cases", cases, "--out", out,
                           "--tune-layers", tune_layers, "--device", check_device(device),
                           "--progress-lines", *extra)


def parse_progress_line(line: str) -> ProgressEvent | None:
    """The inverse of `ProgressEvent.as_line`; None for any other line."""
    if not line.startswith("PROGRESS "):
        return None
    fields = dict(_FIELD.findall(line[len("PROGRESS "):]))
    try:
        task, done, total = fields.pop("task"), int(fields.pop("done")), int(fields.pop("total"))
        fields.pop("percent", None)
        eta = fields.pop("eta_s", None)
        message = ast.literal_eval(fields.pop("msg")) if "msg" in fields else ""
        figures = {key: float(value) for key, value in fields.items()}
    except (KeyError, ValueError, SyntaxError):
        return None
    return ProgressEvent(task, done, total, float(eta) if eta is not None else None, figures, message)


def kill_process_tree(pid: int, use_psutil: bool = True) -> None:
    """Kill a process and all its descendants.

    Only the descendants are waited for here: the root is our own `Popen` child, and reaping it
    through psutil would make `Popen` report exit code 0 for a killed worker. Stock Slicer bundles
    no psutil, so the fallback (the worker's process group, or taskkill /T on Windows) is the path
    most users get; `use_psutil=False` lets the tests take it too.
    """
    psutil = None
    if use_psutil:
        try:
            import psutil
        except ImportError:
            psutil = None
    if psutil is not None:
        try:
            parent = psutil.Process(pid)
            family = parent.children(recursive=True) + [parent]
        except psutil.NoSuchProcess:
            return
        for process in family:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(family[:-1], timeout=5)
    elif os.name == "nt":
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(pid)], capture_output=True, check=False)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)  # the worker leads its own session
        except ProcessLookupError:
            pass


class WorkerProcess:
    """A running child whose merged stdout/stderr lines arrive through a queue."""

    def __init__(self, command: Sequence[str], env: dict | None = None, cwd: str | Path | None = None):
        self.command = [str(c) for c in command]
        self.log: list[str] = []
        self.cancelled = False
        self._lines: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True, bufsize=1, env=env,
                                        cwd=cwd, errors="replace", **popen_options())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\r\n"))
        self.process.stdout.close()

    def drain(self) -> list[str]:
        """Lines that arrived since the last call (never blocks)."""
        lines = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                break
        self.log.extend(lines)
        return lines

    @property
    def finished(self) -> bool:
        """The child exited and all its output has been read (call `drain` once more after)."""
        return self.process.poll() is not None and not self._reader.is_alive()

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def cancel(self, use_psutil: bool = True) -> None:
        self.cancelled = True
        if self.process.poll() is None:
            kill_process_tree(self.process.pid, use_psutil)
            self.process.wait()

    def wait(self, on_line: Callable[[str], None] | None = None, poll_seconds: float = 0.05,
             timeout: float | None = None) -> int:
        """Block until the child ends, passing each line to `on_line`; returns the exit code."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = self.finished
            for line in self.drain():
                if on_line is not None:
                    on_line(line)
            if done:
                return self.process.wait()
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"worker did not finish within {timeout} s: {' '.join(self.command)}")
            time.sleep(poll_seconds)


def is_out_of_memory(log: Sequence[str]) -> bool:
    return any(_OUT_OF_MEMORY.search(line) for line in log)


def warnings_in(log: Sequence[str]) -> list[str]:
    """The worker's warnings (e.g. a scan far from the model's training spacing), without the
    temporary file name the command line puts in front, so the GUI can show them to the user."""
    return [line[line.index("warning: "):] for line in log if "warning: " in line]


def failure_message(returncode: int | None, log: Sequence[str], cancelled: bool = False) -> str:
    """One or two sentences for the user: why the worker failed and what to do."""
    if cancelled or returncode == 130:
        return "Cancelled; nothing was changed."
    if is_out_of_memory(log):
        return "The GPU ran out of memory. Choose CPU as the device and run again (slower, but it fits)."
    errors = [line for line in log if ": error: " in line]
    if errors:
        return errors[-1].split(": error: ", 1)[1]
    if returncode is not None and returncode < 0:
        return (f"The worker process was killed (signal {-returncode}), possibly because the computer "
                "ran out of memory. Try CPU, close other programs, or use fewer cases.")
    last = next((line for line in reversed(log) if line.strip()), "no output")
    return f"The worker process failed (exit code {returncode}): {last}"

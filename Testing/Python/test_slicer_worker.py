"""The worker process: command lines, PROGRESS parsing, streaming, cancel, failure messages."""

import json
import os
import sys
import textwrap
import time

import psutil
import pytest
from WMHDomainAdaptLogicLib.dependencies import torch_problem
from WMHDomainAdaptLogicLib.worker import (
    CREATE_NEW_PROCESS_GROUP,
    CREATE_NO_WINDOW,
    WorkerProcess,
    adapt_command,
    check_device,
    failure_message,
    library_parent,
    parse_devices,
    parse_progress_line,
    popen_options,
    segment_command,
    worker_environment,
)

from WMHDomainAdaptLib.progress import ProgressEvent


def test_progress_line_round_trips_through_the_parser():
    event = ProgressEvent("train", 3, 20, 41.5, {"loss": 0.2134, "val_dice": 0.61}, "it's epoch 3")
    parsed = parse_progress_line(event.as_line())
    assert (parsed.task, parsed.done, parsed.total, parsed.eta_seconds) == ("train", 3, 20, 41.5)
    assert parsed.figures == {"loss": 0.2134, "val_dice": 0.61}
    assert parsed.message == "it's epoch 3"


@pytest.mark.parametrize("line", ["adapted model: x.safetensors", "PROGRESS garbage",
                                  "PROGRESS task=t done=x total=2"])
def test_other_lines_are_not_progress(line):
    assert parse_progress_line(line) is None


def test_commands_run_the_library_module_with_progress_lines_and_the_chosen_device(tmp_path):
    segment = segment_command("PythonSlicer", tmp_path / "m.safetensors", tmp_path / "t1.nrrd",
                              tmp_path / "flair.nrrd", tmp_path / "out.nrrd", tmp_path / "p.nrrd", "cpu")
    assert segment[:4] == ["PythonSlicer", "-m", "WMHDomainAdaptLib", "segment"]
    assert segment[segment.index("--device") + 1] == "cpu" and "--progress-lines" in segment
    assert segment[segment.index("--prob") + 1] == str(tmp_path / "p.nrrd")
    adapt = adapt_command("PythonSlicer", tmp_path / "m.safetensors", tmp_path / "manifest.csv",
                          tmp_path / "new.safetensors", 4, "cuda")
    assert adapt[adapt.index("--tune-layers") + 1] == "4" and adapt[adapt.index("--device") + 1] == "cuda"
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda, cuda:N or mps"):
        adapt_command("PythonSlicer", "m", "c", "o", "auto", "gpu")
    with pytest.raises(ValueError, match="tuned layers"):
        adapt_command("PythonSlicer", "m", "c", "o", 0, "cpu")


def test_environment_makes_the_library_importable_and_cpu_hides_cuda():
    env = worker_environment("cpu", base={"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(library_parent()), "/elsewhere"]
    assert (library_parent() / "WMHDomainAdaptLib" / "__main__.py").is_file()
    assert env["CUDA_VISIBLE_DEVICES"] == "-1" and env["PYTHONUNBUFFERED"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in worker_environment("auto", base={})


def test_worker_streams_stdout_and_stderr_lines_and_the_exit_code():
    script = ("import sys; print('PROGRESS task=a done=1 total=2 percent=50.0'); "
              "print('boom', file=sys.stderr); sys.exit(3)")
    worker = WorkerProcess([sys.executable, "-c", script])
    lines = []
    assert worker.wait(lines.append, timeout=30) == 3
    assert lines == ["PROGRESS task=a done=1 total=2 percent=50.0", "boom"] == worker.log


def gone_within(pid: int, seconds: float) -> bool:
    """A SIGKILLed process may take a moment to die on a loaded machine; a zombie counts as dead."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("use_psutil", [True, False], ids=["psutil", "without-psutil"])
def test_cancel_kills_the_whole_process_tree(use_psutil):
    """Stock Slicer has no psutil: the process-group kill must reach the grandchild too."""
    script = textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    worker = WorkerProcess([sys.executable, "-c", script])
    lines = []
    while not lines:
        lines += worker.drain()
    grandchild = int(lines[0])
    worker.cancel(use_psutil=use_psutil)
    assert worker.wait(timeout=10) != 0 and worker.cancelled
    assert gone_within(grandchild, seconds=5)
    message = failure_message(worker.returncode, worker.log, worker.cancelled)
    assert message == "Cancelled; nothing was changed."


def test_windows_workers_start_in_their_own_group_without_a_console_window():
    flags = popen_options("nt")["creationflags"]
    assert flags & CREATE_NO_WINDOW and flags & CREATE_NEW_PROCESS_GROUP
    assert popen_options("posix") == {"start_new_session": True}


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_every_device_the_library_takes_is_accepted_for_the_worker(device):
    assert check_device(device) == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "", "CPU "])
def test_devices_the_library_refuses_are_refused_before_the_worker_starts(device):
    with pytest.raises(ValueError, match="cuda:N"):
        check_device(device)


def test_the_device_list_comes_from_the_workers_json_line_and_falls_back_to_the_cpu():
    line = json.dumps([{"key": "auto", "label": "Auto"}, {"key": "cuda:0", "label": "GPU 0: H200"},
                       {"key": "cpu", "label": "CPU"}])
    assert parse_devices(["torch warming up", line]) == [("auto", "Auto"), ("cuda:0", "GPU 0: H200"),
                                                        ("cpu", "CPU")]
    assert parse_devices(["Traceback ...", "[not json"]) == [("cpu", "CPU")]


@pytest.mark.parametrize("installed,ok", [("2.1.0", True), ("2.13.0+cpu", True), ("2.1.0a0", True),
                                          ("2.0.1+cu118", False), ("1.13.1", False)])
def test_an_installed_torch_older_than_the_module_needs_is_reported_with_the_fix(installed, ok):
    problem = torch_problem(installed)
    assert (problem is None) == ok
    if not ok:
        assert installed in problem and "pip_install" in problem


@pytest.mark.parametrize("code,log,expected", [
    (1, ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB"], "Choose CPU"),
    (2, ["wmhda adapt: error: --cases: adaptation needs at least one labelled scan (N = 0)"],
     "--cases: adaptation needs at least one labelled scan (N = 0)"),
    (-9, ["PROGRESS task=train done=1 total=30 percent=3.3"], "killed (signal 9)"),
    (1, ["Traceback (most recent call last):", "ZeroDivisionError: division by zero", ""],
     "exit code 1): ZeroDivisionError: division by zero"),
])
def test_failure_message_says_why_and_what_to_do(code, log, expected):
    assert expected in failure_message(code, log)


BLOCKER = textwrap.dedent("""
    import runpy, sys
    class Absent:
        # Slicer's Python has none of the optional extras; Windows has no `resource` module.
        names = {"matplotlib", "scipy", "nilearn", "resource"}
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                raise ModuleNotFoundError(f"No module named '{name}'", name=name)
    sys.meta_path.insert(0, Absent())
    sys.argv = ["wmhda", *sys.argv[1:]]
    runpy.run_module("WMHDomainAdaptLib", run_name="__main__")
""")


@pytest.mark.parametrize("command", ["segment", "adapt"])
def test_worker_commands_start_in_a_python_without_the_optional_extras(command):
    pytest.importorskip("torch", reason="the worker runs torch (absent from the Slicer-Python jobs)")
    worker = WorkerProcess([sys.executable, "-c", BLOCKER, command, "--help"], worker_environment("cpu"))
    assert worker.wait(timeout=60) == 0, "\n".join(worker.log[-5:])

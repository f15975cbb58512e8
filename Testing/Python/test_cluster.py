"""Work on a real Dask LocalCluster of two worker processes.

A cohort: the same masks as one process, resumable, failures contained. The study's grid: the
same rows as one process, and a finished run never redone.
"""

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import torch
from phantom import save_tiny_model, write_phantom_case
from test_experiment import config_dict, phantom_root  # noqa: F401  (a fixture: the tiny two-domain data)

from WMHDomainAdaptLib.cli import main
from WMHDomainAdaptLib.cluster import connect
from WMHDomainAdaptLib.cohort import Settings, segment_cohort, segment_task
from WMHDomainAdaptLib.cohort_log import LOG_FILE, SUMMARY_FILE, Job, ResultsLog
from WMHDomainAdaptLib.dataset import write_manifest
from WMHDomainAdaptLib.errors import Cancelled, InputError
from WMHDomainAdaptLib.experiments.config import parse_config
from WMHDomainAdaptLib.experiments.distributed import run_experiment_on_cluster
from WMHDomainAdaptLib.experiments.runner import RESULTS_FILE, run_experiment
from WMHDomainAdaptLib.experiments.table import read_rows, row_key
from WMHDomainAdaptLib.modelheader import file_sha256

pytest.importorskip("distributed")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
SEEDS = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    cases = [write_phantom_case(root / "cases", seed) for seed in SEEDS]
    return {"root": root, "cases": cases, "manifest": write_manifest(cases, root / "cases" / "manifest.csv"),
            "model": save_tiny_model(root / "model.safetensors")}


@pytest.fixture(scope="module")
def cluster():
    with connect("local:2") as (client, slots):
        client.wait_for_workers(2)
        yield client, slots


@pytest.fixture(scope="module")
def single_process_masks(cohort, tmp_path_factory):
    """Today's path, one process and no Dask: the reference the cluster must match byte for byte."""
    out = tmp_path_factory.mktemp("single")
    assert main(["segment", "--model", str(cohort["model"]), "--cases", str(cohort["manifest"]),
                 "--out-dir", str(out), "--threads", "1"]) == 0
    return {path.name: path.read_bytes() for path in out.glob("*_wmh_pred.nii.gz")}


def jobs_for(cohort, out: Path, cases=None) -> list[Job]:
    return [Job(case, out / f"{case.case_id}_wmh_pred.nii.gz") for case in (cases or cohort["cases"])]


def run(cluster, cohort, out: Path, jobs=None, **options):
    client, slots = cluster
    return segment_cohort(client, slots, jobs or jobs_for(cohort, out), cohort["model"], out, Settings(),
                          "cpu", **options)


def test_masks_from_two_workers_equal_the_single_process_masks_byte_for_byte(cluster, cohort,
                                                                              single_process_masks, tmp_path):
    result = run(cluster, cohort, tmp_path)
    assert [record["status"] for record in result.records] == ["done"] * len(SEEDS)
    assert len({record["worker"] for record in result.records}) == 2  # both workers took cases
    written = {path.name: path.read_bytes() for path in tmp_path.glob("*_wmh_pred.nii.gz")}
    assert written == single_process_masks


def test_each_finished_case_is_recorded_with_its_outputs_hashes_model_and_figures(cluster, cohort, tmp_path):
    run(cluster, cohort, tmp_path)
    lines = [json.loads(line) for line in (tmp_path / LOG_FILE).read_text(encoding="utf-8").splitlines()]
    assert lines[0]["kind"] == "header" and len(lines) == 1 + len(SEEDS)
    record = lines[1]
    mask = Path(record["outputs"]["mask"]["path"])
    assert record["outputs"]["mask"]["sha256"] == file_sha256(mask)
    assert record["model_sha256"] == file_sha256(cohort["model"])
    assert {"lesion_volume_ml", "lesion_count", "seconds", "worker"} <= record.keys()
    summary = (tmp_path / SUMMARY_FILE).read_text(encoding="utf-8").splitlines()
    assert len(summary) == 1 + len(SEEDS) and all(",done," in row for row in summary[1:])


def test_a_run_cancelled_midway_resumes_with_only_the_missing_cases(cluster, cohort, tmp_path):
    def cancel_after_the_first_case(event):
        raise Cancelled("the user pressed Ctrl-C")
    with pytest.raises(Cancelled):
        run(cluster, cohort, tmp_path, progress=cancel_after_the_first_case)
    recorded = ResultsLog(tmp_path, _model_sha(cohort)).records
    assert 1 <= len(recorded) < len(SEEDS)
    kept = {case_id: os.stat(record["outputs"]["mask"]["path"]).st_mtime_ns
            for case_id, record in recorded.items()}
    events = []
    result = run(cluster, cohort, tmp_path, progress=events.append)
    assert result.skipped == len(recorded)
    assert events[-1].total == len(SEEDS) - len(recorded)  # only the missing cases were sent
    assert all(os.stat(r["outputs"]["mask"]["path"]).st_mtime_ns == kept[r["case_id"]]
               for r in result.records if r["case_id"] in kept)
    assert [record["status"] for record in result.records] == ["done"] * len(SEEDS)


def test_a_rerun_redoes_a_case_whose_output_was_changed_or_deleted(cluster, cohort, tmp_path):
    run(cluster, cohort, tmp_path)
    (tmp_path / "phantom001_wmh_pred.nii.gz").unlink()
    (tmp_path / "phantom002_wmh_pred.nii.gz").write_bytes(b"not the recorded mask")
    events = []
    result = run(cluster, cohort, tmp_path, progress=events.append)
    assert result.skipped == len(SEEDS) - 2 and events[-1].total == 2
    assert (tmp_path / "phantom001_wmh_pred.nii.gz").is_file()


def test_a_case_that_fails_is_retried_on_the_other_worker_then_reported_while_the_others_finish(
        cluster, cohort, tmp_path):
    broken = write_phantom_case(tmp_path / "cases", 9)
    broken.flair.write_bytes(b"this is not a NIfTI file")
    out = tmp_path / "out"
    result = run(cluster, cohort, out, jobs_for(cohort, out, cohort["cases"] + [broken]))
    failed = result.records[-1]
    assert result.failed == [broken.case_id] and failed["status"] == "failed"
    assert str(broken.flair) in failed["error"] and "\n" not in failed["error"]
    assert failed["attempts"] == 2 and len(set(failed["tried_on"])) == 2  # the second try on the other worker
    assert [record["status"] for record in result.records[:-1]] == ["done"] * len(SEEDS)


def dies_once_on_phantom003(*args):
    """The real task, but the first attempt at phantom003 kills its worker process outright."""
    job = args[3]
    marker = job.mask_path.parent / ".phantom003-killed-its-worker"
    if job.case.case_id == "phantom003" and not marker.exists():
        marker.touch()
        os._exit(1)
    return segment_task(*args)


def test_a_task_whose_worker_is_killed_runs_again_and_its_case_is_finished(cluster, cohort,
                                                                            single_process_masks, tmp_path):
    result = run(cluster, cohort, tmp_path, task=dies_once_on_phantom003)
    assert (tmp_path / ".phantom003-killed-its-worker").is_file()  # the kill did happen
    assert [record["status"] for record in result.records] == ["done"] * len(SEEDS)
    assert (tmp_path / "phantom003_wmh_pred.nii.gz").read_bytes() == single_process_masks[
        "phantom003_wmh_pred.nii.gz"]
    cluster[0].wait_for_workers(2)  # the nanny restarts the killed worker for the next tests


def test_a_results_log_from_another_model_is_refused(cluster, cohort, tmp_path):
    run(cluster, cohort, tmp_path, jobs_for(cohort, tmp_path, cohort["cases"][:1]))
    other = save_tiny_model(tmp_path / "other.safetensors", seed=7)
    code = main(["segment", "--model", str(other), "--cases", str(cohort["manifest"]), "--out-dir",
                 str(tmp_path), "--cluster", "local:1"])
    assert code == 2 and len(list(tmp_path.glob("*_wmh_pred.nii.gz"))) == 1


def test_an_unreachable_scheduler_is_one_line_within_seconds_and_writes_nothing(cohort, tmp_path, capsys):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    began = time.monotonic()
    code = main(["segment", "--model", str(cohort["model"]), "--cases", str(cohort["manifest"]),
                 "--out-dir", str(tmp_path / "out"), "--cluster", f"tcp://127.0.0.1:{port}"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and time.monotonic() - began < 20
    assert "cannot reach the Dask scheduler" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_cluster_file_names_the_scheduler_to_use(cluster, cohort, tmp_path, capsys):
    settings = tmp_path / "cluster.yaml"
    settings.write_text(f"scheduler: {cluster[0].scheduler.address}\n")
    code = main(["segment", "--model", str(cohort["model"]), "--cases", str(cohort["manifest"]),
                 "--out-dir", str(tmp_path / "out"), "--cluster", str(settings)])
    assert code == 0 and len(list((tmp_path / "out").glob("*_wmh_pred.nii.gz"))) == len(SEEDS)
    assert f"{len(SEEDS)} of {len(SEEDS)} cases done" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["just words", "jobqueue: nosuchqueue\n", "scheduler: [unclosed\n"])
def test_a_bad_cluster_file_is_one_line(tmp_path, text):
    settings = tmp_path / "cluster.yaml"
    settings.write_text(text)
    with pytest.raises(InputError, match="cluster.yaml"), connect(str(settings)):
        pass


def test_cluster_needs_a_batch_of_cases(cohort, tmp_path):
    case = cohort["cases"][0]
    assert main(["segment", "--model", str(cohort["model"]), "--t1", str(case.t1), "--flair", str(case.flair),
                 "--out", str(tmp_path / "m.nii.gz"), "--cluster", "local:1"]) == 2


def test_a_full_disk_stops_the_run_names_the_disk_and_keeps_the_finished_cases_recorded(cluster, cohort,
                                                                                        tmp_path):
    from test_bad_input_battery import small_mount
    with small_mount(tmp_path / "disk", "size=512k") as disk:
        run(cluster, cohort, disk, jobs_for(cohort, disk, cohort["cases"][:1]))
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as handle:
            while True:
                handle.write(b"x" * 4096)
                handle.flush()
        with pytest.raises(InputError, match="disk full") as raised:
            run(cluster, cohort, disk)
        assert str(disk) in str(raised.value) and "No space left" in str(raised.value)
        recorded = ResultsLog(disk, _model_sha(cohort)).records
        assert list(recorded) == ["phantom001"] and recorded["phantom001"]["status"] == "done"


def _model_sha(cohort) -> str:
    return file_sha256(cohort["model"])


TIMING_COLUMNS = {"train_s", "eval_s", "wall_s", "finished_utc"}


def test_the_study_grid_on_two_workers_gives_the_rows_of_one_process_and_resumes_without_redoing(
        cluster, phantom_root, tmp_path):  # noqa: F811
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two workers on two cores: the same arithmetic
    try:
        config = parse_config(config_dict())
        run_experiment(config, phantom_root, tmp_path / "one", "cpu")
        client, slots = cluster
        run_experiment_on_cluster(client, slots, config, phantom_root, tmp_path / "two", "cpu")
    finally:
        torch.set_num_threads(threads)
    one, two = ({row_key(row): row for row in read_rows(tmp_path / name / RESULTS_FILE)}
                for name in ("one", "two"))
    assert one.keys() == two.keys() and len(one) > 5
    for key in one:
        assert {c: v for c, v in one[key].items() if c not in TIMING_COLUMNS} == \
               {c: v for c, v in two[key].items() if c not in TIMING_COLUMNS}, key
    before = (tmp_path / "two" / RESULTS_FILE).read_bytes()
    events = []
    run_experiment_on_cluster(client, slots, config, phantom_root, tmp_path / "two", "cpu", events.append)
    assert [event.total for event in events if event.task == "runs"] in ([], [0])  # nothing sent
    assert (tmp_path / "two" / RESULTS_FILE).read_bytes() == before


def test_bench_cohort_prints_the_single_process_and_each_worker_count(cohort, capsys):
    assert main(["bench", "cohort", "--model", str(cohort["model"]), "--cases", str(cohort["manifest"]),
                 "--workers", "1", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"cohort of {len(SEEDS)} scans" in printed and "single process" in printed
    assert "local:1 (1 torch thread(s) a worker)" in printed and "ms a task" in printed

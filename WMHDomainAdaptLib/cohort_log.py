"""The record of a cohort run: which cases are finished, with what model and outputs.

One JSON line per finished (or failed) case, appended and fsynced by the one process that
coordinates the run, so a record is either whole on disk or absent: a line cut off by a crash
is ignored when the log is read. The first line names the model; a log made with another model
is refused rather than mixed. A case counts as done on a later run only if its record's model,
settings and input files are the same and its outputs still exist with the recorded SHA-256.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .dataset import Case
from .errors import InputError
from .io import atomic_write
from .modelheader import file_sha256

LOG_FILE = "segment_results.jsonl"
SUMMARY_FILE = "segment_summary.csv"
LOG_FORMAT = 1
SUMMARY_COLUMNS = ("case_id", "status", "mask", "probability", "lesion_volume_ml", "lesion_count",
                   "threshold", "seconds", "worker", "attempts", "error")


@dataclass(frozen=True)
class Job:
    """One case to segment and where its outputs go."""

    case: Case
    mask_path: Path
    prob_path: Path | None = None

    @property
    def outputs(self) -> dict[str, Path]:
        named = {"mask": self.mask_path, "probability": self.prob_path}
        return {role: path for role, path in named.items() if path is not None}


def input_stamp(case: Case) -> list[list]:
    """Path, size and modification time of each input: a changed scan is segmented again."""
    files = [p for p in (case.t1, case.flair, case.mask) if p is not None]
    stamp = []
    for path in files:
        status = Path(path).stat()
        stamp.append([str(Path(path).resolve()), status.st_size, status.st_mtime_ns])
    return stamp


def outputs_record(job: Job) -> dict[str, dict]:
    return {role: {"path": str(path), "sha256": file_sha256(path)} for role, path in job.outputs.items()}


class ResultsLog:
    """The append-only record in an output folder, read once when a run starts."""

    def __init__(self, out_dir: Path, model_sha256: str):
        self.path = Path(out_dir) / LOG_FILE
        self.model_sha256 = model_sha256
        self.records: dict[str, dict] = {}
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut off by a crash: that case is not recorded
                continue
        header = next((entry for entry in entries if entry.get("kind") == "header"), None)
        if header is not None and header.get("model_sha256") != self.model_sha256:
            raise InputError(self.path, "records a cohort segmented with another model (SHA-256 "
                                        f"{str(header.get('model_sha256'))[:12]}...); use a new --out-dir")
        for entry in entries:
            if entry.get("kind") == "case":
                self.records[entry["case_id"]] = entry

    def is_done(self, job: Job, settings: dict) -> bool:
        """Finished earlier with this model, these settings and inputs, and its outputs unchanged."""
        record = self.records.get(job.case.case_id)
        if record is None or record.get("status") != "done":
            return False
        if record.get("model_sha256") != self.model_sha256 or record.get("settings") != settings:
            return False
        if record.get("inputs") != input_stamp(job.case):
            return False
        recorded = record.get("outputs", {})
        if set(recorded) != set(job.outputs):
            return False
        return all(Path(recorded[role]["path"]) == path and path.is_file()
                   and file_sha256(path) == recorded[role]["sha256"] for role, path in job.outputs.items())

    def append(self, record: dict) -> None:
        """Add one case's record, on disk before this returns."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        if not self.path.is_file() or self.path.stat().st_size == 0:
            lines.append({"kind": "header", "format": LOG_FORMAT, "model_sha256": self.model_sha256})
        lines.append({"kind": "case", **record})
        text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
        with open(self.path, "a", encoding="utf-8") as handle:
            if handle.tell() and not self._ends_with_newline():
                text = "\n" + text  # after a cut-off line, start a new one
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        self.records[record["case_id"]] = {"kind": "case", **record}

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"


def summary_row(record: dict) -> dict:
    outputs = record.get("outputs", {})
    row = {column: record.get(column, "") for column in SUMMARY_COLUMNS}
    row["mask"] = outputs.get("mask", {}).get("path", "")
    row["probability"] = outputs.get("probability", {}).get("path", "")
    return row


def write_summary(out_dir: Path, records: Iterable[dict]) -> Path:
    """The cohort's CSV, one row per case in the order given, written in one step."""
    text = io.StringIO()
    writer = csv.DictWriter(text, SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary_row(record) for record in records)
    return atomic_write(Path(out_dir) / SUMMARY_FILE,
                        lambda tmp: tmp.write_text(text.getvalue(), encoding="utf-8"))

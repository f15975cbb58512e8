"""CSV tables that grow one run at a time and survive a kill at any moment.

Each append rewrites the whole (small) file to a temporary name and renames it over the old one,
so a reader, or a resumed experiment, sees either the table before the run or after it, never a
half-written row. A run's identity is its key (setting, n_scans, tune_layers, draw).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import InputError
from ..io import atomic_write

KEY_COLUMNS = ("setting", "n_scans", "tune_layers", "draw")
RunKey = tuple[str, int, int, int]


def row_key(row: Mapping) -> RunKey:
    return (str(row["setting"]), int(row["n_scans"]), int(row["tune_layers"]), int(row["draw"]))


def read_rows(path: Path) -> list[dict]:
    """Rows as dicts of strings; an absent file is an empty table."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _render(columns: tuple[str, ...], rows: Iterable[Mapping]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row.get(key, "")) for key in columns})
    return buffer.getvalue()


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


class RunTable:
    """A CSV with fixed columns; `replace_run` swaps in the rows of one run atomically."""

    def __init__(self, path: Path, columns: tuple[str, ...]):
        self.path, self.columns = Path(path), tuple(columns)
        existing = read_rows(self.path)
        if existing and tuple(existing[0].keys()) != self.columns:
            raise InputError(self.path, "this results table has other columns (made by another version); "
                                        "use a new output folder")

    def rows(self) -> list[dict]:
        return read_rows(self.path)

    def keys(self) -> set[RunKey]:
        return {row_key(row) for row in self.rows()}

    def replace_run(self, key: RunKey, new_rows: list[Mapping]) -> None:
        """Drop any earlier rows of `key` (e.g. of a run killed midway), then add `new_rows`."""
        kept = [row for row in self.rows() if row_key(row) != key]
        text = _render(self.columns, kept + [dict(row) for row in new_rows])
        atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

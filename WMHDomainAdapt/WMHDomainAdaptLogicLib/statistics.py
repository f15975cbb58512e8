"""The scene's WMH segmentations in one table: case, volume, lesion count, model; CSV export.

Figures are recomputed from the segment as it is now, so they follow the user's corrections in the
Segment Editor (the label under Segment shows the same numbers for the selected segmentation).
The table lives in the scene as a table node, so Slicer's table view shows it and the Save dialog
stores it with the scene; `write_csv` exports the same rows atomically.
"""

from __future__ import annotations

import csv
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from WMHDomainAdaptLib.io import atomic_write
from WMHDomainAdaptLib.lesions import lesion_statistics

from .segmentation import (
    flair_of,
    read_provenance,
    segment_to_flair_labelmap,
    wmh_segment_id,
)

TABLE_NAME = "WMH statistics"
TABLE_ATTRIBUTE = "WMHDomainAdapt.StatisticsTable"


@dataclass(frozen=True)
class StatisticsRow:
    case: str  # the FLAIR's name
    segmentation: str
    volume_ml: float
    lesion_count: int
    model: str  # "" for a segmentation this module did not make


def segmentation_statistics(scene, segmentation_node, flair_node=None):
    """Volume and lesion count of the WMH segment as it is now, on its FLAIR's grid; None without one."""
    flair_node = flair_node or flair_of(segmentation_node)
    segment_id = wmh_segment_id(segmentation_node)
    if flair_node is None or segment_id is None:
        return None
    mask = segment_to_flair_labelmap(scene, segmentation_node, flair_node, segment_id)
    return lesion_statistics(mask, flair_node.GetSpacing())


def statistics_rows(scene) -> list[StatisticsRow]:
    """One row per segmentation node with a WMH segment and a known FLAIR, in scene order."""
    rows = []
    for node in scene.GetNodesByClass("vtkMRMLSegmentationNode"):
        statistics = segmentation_statistics(scene, node)
        if statistics is None:
            continue
        provenance = read_provenance(node)
        rows.append(StatisticsRow(flair_of(node).GetName(), node.GetName(), round(statistics.volume_ml, 3),
                                  statistics.count, provenance.model if provenance else ""))
    return rows


def update_table_node(scene, rows: list[StatisticsRow]):
    """The module's table node (created once, then reused) filled with `rows`."""
    table = next((node for node in scene.GetNodesByClass("vtkMRMLTableNode")
                  if node.GetAttribute(TABLE_ATTRIBUTE)), None)
    if table is None:
        table = scene.AddNewNodeByClass("vtkMRMLTableNode", TABLE_NAME)
        table.SetAttribute(TABLE_ATTRIBUTE, "1")
    table.RemoveAllColumns()
    names = [field.name for field in fields(StatisticsRow)]
    for name in names:
        column = table.AddColumn()
        column.SetName(name)
    for row in rows:
        index = table.AddEmptyRow()
        for column, value in enumerate(astuple(row)):
            table.SetCellText(index, column, str(value))
    return table


def write_csv(rows: list[StatisticsRow], path: str | Path) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([field.name for field in fields(StatisticsRow)])
            writer.writerows(astuple(row) for row in rows)

    return atomic_write(path, write, suffix=".csv")

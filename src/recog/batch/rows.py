"""The one table `recog predict --out` writes, for every task and both engines.

One row per image.  A task fills the columns its predictions have
(`recog.api.facet.OUTPUT`'s `columns`): a classifier its top-k `labels` and `scores` (and
`unknown`, `ood_score` where the run has a reject rule), a detector its shown
`labels`, `scores` and `boxes` (x1, y1, x2, y2 in pixels of the image), a
segmenter the classes present with their pixel fractions and one COCO RLE
mask each (`masks`: label, size [h, w], counts; `pycocotools.mask.decode`
reads them).  `error` holds the one line for an image that could not be read,
its other prediction columns null; so does an image the model answered with NaN or inf
(`NON_FINITE`: a diverged model's), whose numbers are never written as scores.  `model`, `run` (the run directory) and
`time` (UTC) say where each answer came from.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from recog.api.results import NON_FINITE, all_finite

MASK = pa.struct([("label", pa.string()), ("size", pa.list_(pa.int32())), ("counts", pa.string())])

SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("task", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("scores", pa.list_(pa.float64())),
        ("boxes", pa.list_(pa.list_(pa.float64()))),
        ("masks", pa.list_(MASK)),
        ("unknown", pa.bool_()),
        ("ood_score", pa.float64()),
        ("model", pa.string()),
        ("run", pa.string()),
        ("time", pa.timestamp("ms", tz="UTC")),
        ("error", pa.string()),
    ]
)
#: the columns a task may fill (`recog.api.facet.OutputFacet.columns`)
PREDICTION_COLUMNS = ("labels", "scores", "boxes", "masks", "unknown", "ood_score")


def make_row(
    path: str, *, task: str, model: str, run: str,
    columns: dict[str, Any] | None = None, error: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    unknown = set(columns or {}) - set(PREDICTION_COLUMNS)
    if unknown:  # a task filling a column the schema lacks is a bug, not data
        raise ValueError(f"the task's columns gave columns the schema lacks: {sorted(unknown)}")
    if not all_finite(columns):
        columns, error = None, f"{path}: {NON_FINITE}"
    row: dict[str, Any] = dict.fromkeys(PREDICTION_COLUMNS)
    row.update(columns or {})
    row.update(path=path, task=task, model=model, run=run, error=error)
    row["time"] = dt.datetime.now(dt.UTC)
    return row


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    # column by column: 1.8 ms for 1,024 classifier rows where `Table.from_pylist` took 136
    # (measured), time the main process would take from the model
    return pa.table(
        {f.name: pa.array([r[f.name] for r in rows], type=f.type) for f in SCHEMA}, schema=SCHEMA
    )


def json_ready(row: dict[str, Any]) -> dict[str, Any]:
    """A row for a JSON line: the time as ISO 8601 (UTC, milliseconds, as the Parquet column)."""
    out = dict(row)
    out["time"] = row["time"].isoformat(timespec="milliseconds")
    return out

"""Rows of `recog predict` as CSV text, the same for images and video frames."""

from __future__ import annotations

import csv
import io
from typing import Any

from recog.errors import RecogError


def csv_text(rows: list[dict[str, Any]]) -> str:
    """A header of every column any row has (first seen first), then the rows; a row with
    NaN or inf is refused (csv writes `nan`, which a reader takes for a score)."""
    # imported here: `recog --help` reads this module and must not import torch
    from recog.api.results import NON_FINITE, all_finite

    columns: list[str] = []
    for row in rows:
        if not all_finite(row):
            raise RecogError(f"{row.get('path', 'a row')}: {NON_FINITE}")
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns or ["path"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()

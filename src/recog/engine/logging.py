"""The training log: per-epoch console lines and results.csv (bars and warnings: recog.console)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recog.io import atomic_write_text


class ResultsTable:
    """results.csv: one row per epoch, rewritten atomically so it is never half-written."""

    def __init__(self, path: Path | None, rows: Sequence[dict[str, Any]] = ()) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = list(rows)

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        if not path.is_file():
            return []
        with path.open(newline="") as fh:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.path is None:
            return
        columns: list[str] = []
        for r in self.rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _fmt(r.get(k)) for k in columns})
        atomic_write_text(self.path, buf.getvalue())


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else ("" if value is None else value)


def _number(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def epoch_line(epoch: int, epochs: int, row: dict[str, Any], primary: str) -> str:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    parts += [
        f"{k} {v:.4f}"
        for k, v in row.items()
        if k.startswith("train_") and k != "train_images_per_second" and isinstance(v, float)
    ]
    if isinstance(row.get(primary), float):
        parts.append(f"{primary} {row[primary]:.4f}")
    parts.append(
        f"{row.get('train_images_per_second', 0.0):.0f} img/s  {row.get('seconds', 0.0):.1f}s"
    )
    return "  ".join(parts)

"""Progress bars with rate and ETA, per-epoch console lines, and results.csv.

rich draws the bars on a terminal; off a terminal (CI, logs) they stay
quiet and the one-line epoch summaries carry the information.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from recog.io import atomic_write_text


def console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


class RateColumn(ProgressColumn):
    """Items per second, e.g. `412 img/s`."""

    def __init__(self, unit: str = "img") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("   -- " + self.unit + "/s" if speed is None else f"{speed:6.0f} {self.unit}/s")


@contextmanager
def progress_bar(*, enabled: bool = True, unit: str = "img") -> Iterator[Progress]:
    """A rich Progress with description, bar, M/N, rate, elapsed and ETA."""
    con = console()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=con,
        transient=True,
        disable=not enabled or not con.is_terminal,
    )
    with progress:
        yield progress


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


def warn(message: str) -> None:
    print(f"recog: warning: {message}", file=sys.stderr)

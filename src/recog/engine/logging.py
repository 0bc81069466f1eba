"""The training log: the per-epoch table a run prints, and results.csv (bars and warnings: recog.console)."""

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


class EpochTable:
    """The lines a run prints per epoch: a header once, then one row per epoch, in aligned
    columns: epoch, the training losses, the validation loss (where the task's metrics have
    one), the primary metric (and its robust twin under adversarial training), the learning
    rate, images per second and seconds.

    The columns are fixed by the first row (a resumed run prints its header again, once).
    """

    def __init__(self, primary: str, *, val_loss: str | None = None, epochs: int = 1) -> None:
        self.primary, self.val_loss = primary, val_loss
        self.epoch_width = max(len("epoch"), 2 * len(str(epochs)) + 1)
        self.columns: list[tuple[str, str, int]] | None = None  # (row key, header, width)

    def _columns(self, row: dict[str, Any]) -> list[tuple[str, str, int]]:
        losses = [k for k in row if k.startswith("train_") and k != "train_images_per_second"]
        keys = [*losses]
        if self.val_loss and self.val_loss in row:
            keys.append(self.val_loss)
        keys.append(self.primary)
        # an adversarially trained run's robust metric (PGD at its eps) stands beside the clean
        # one; a distilled run's parts (train_task_loss, train_kd) are among the losses
        keys += [k for k in (f"robust_{self.primary}",) if k in row]
        columns = [(k, _header(k, self.val_loss), 0) for k in keys]
        columns += [("lr", "lr", 0), ("train_images_per_second", "img/s", 0), ("seconds", "sec", 0)]
        return [(key, head, max(len(head), _WIDTHS.get(key, 6))) for key, head, _ in columns]

    def lines(self, epoch: int, epochs: int, row: dict[str, Any]) -> list[str]:
        """The header (first call only) and the row of `epoch` (0-based) of `epochs`."""
        out = []
        if self.columns is None:
            self.columns = self._columns(row)
            out.append(
                "  ".join(["epoch".rjust(self.epoch_width)]
                          + [head.rjust(width) for _, head, width in self.columns])
            )  # fmt: skip
        cells = [f"{epoch + 1}/{epochs}".rjust(self.epoch_width)]
        cells += [_cell(key, row.get(key)).rjust(width) for key, _, width in self.columns]
        out.append("  ".join(cells))
        return out


#: a column's narrowest width (metrics and losses: 4 decimals)
_WIDTHS = {"lr": 8, "train_images_per_second": 6, "seconds": 6}


def _header(key: str, val_loss: str | None) -> str:
    if key == val_loss:
        return f"val_{key}"
    return key


def _cell(key: str, value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    if key == "lr":
        return f"{value:.2e}"
    if key == "train_images_per_second":
        return f"{value:.0f}"
    if key == "seconds":
        return f"{value:.1f}"
    return f"{value:.4f}"

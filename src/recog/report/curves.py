"""Training curves from results.csv: one panel per loss, metric and the learning rate.

Each panel has the epoch on x (integer ticks) and its quantity on y, named
in words (`labels`: metrics.json key -> human name, from the Task).  A loss
the run measures both ways shares its panel: `train_loss` with the
validation loss (`val_loss`, or classification's `nll`), `train_X` with
`val_X`.  Bookkeeping columns (times, throughput, counts) are not drawn.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from recog.report.render import save_figure

#: columns that are bookkeeping, not curves
_NOT_PLOTTED = {"epoch", "seconds", "train_images_per_second", "epochs_run", "best_epoch"}
#: validation losses under another name: classification's validation cross-entropy
_VAL_LOSS_ALIASES = {"nll": "val_loss"}


def read_columns(results_csv: Path) -> dict[str, list[float]]:
    """Numeric columns of a results.csv; blanks and non-numbers become NaN."""
    with Path(results_csv).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns: dict[str, list[float]] = {}
    for name in rows[0].keys() if rows else []:
        if not name:
            continue
        values = [_float(row.get(name)) for row in rows]
        if any(math.isfinite(v) for v in values):
            columns[name] = values
    return columns


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _is_bookkeeping(name: str) -> bool:
    return name in _NOT_PLOTTED or name.startswith("num_") or "second" in name


def panels(columns: Mapping[str, list[float]]) -> dict[str, dict[str, str]]:
    """Panel title -> {series label: column}, in the order drawn: losses, metrics, lr."""
    losses: dict[str, dict[str, str]] = {}
    metrics: dict[str, dict[str, str]] = {}
    for name in columns:
        if _is_bookkeeping(name) or name == "lr":
            continue
        key = _VAL_LOSS_ALIASES.get(name, name)
        for split in ("train", "val"):
            if key.startswith(f"{split}_"):
                part = key.removeprefix(f"{split}_").removeprefix("loss_")
                title = part if part.endswith("loss") else f"{part} loss"
                alias = f" ({name.upper()})" if key != name else ""
                losses.setdefault(title, {})[f"{split} {title}{alias}"] = name
                break
        else:
            metrics[name] = {"val": name}
    out = {**losses, **metrics}
    if "lr" in columns:
        out["learning rate"] = {"lr": "lr"}
    return out


def plot_curves(results_csv: Path, out: Path, *, labels: Mapping[str, str] | None = None) -> Path:
    """Every loss, validation metric and the learning rate against the epoch, a panel each
    (4 across); an empty results.csv draws one panel saying "no data"."""
    names = dict(labels or {})
    columns = read_columns(results_csv)
    n = max((len(v) for v in columns.values()), default=0)
    epochs = columns.get("epoch") or [float(i + 1) for i in range(n)]
    layout = panels(columns)
    cols = min(4, max(1, len(layout)))
    rows = max(1, math.ceil(len(layout) / cols))
    fig = Figure(figsize=(3.3 * cols, 2.7 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    marker = "o" if n <= 30 else None
    for ax in axes[len(layout) :]:
        ax.axis("off")
    if not layout:
        axes[0].axis("on")
        axes[0].text(0.5, 0.5, "no data", ha="center", va="center", color="gray",
                     transform=axes[0].transAxes)  # fmt: skip
    for ax, (title, series) in zip(axes, layout.items(), strict=False):
        quantity = names.get(title, title) if len(series) == 1 else title
        for label, column in series.items():
            ax.plot(epochs, columns[column], marker=marker, markersize=4, label=label)
        ax.set_title(quantity, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(quantity)
        ax.grid(True, alpha=0.3)
        # integer epochs only, even when the run has one or two (MaxNLocator's default
        # falls back to 0.5, 0.6, ... below two integers in view)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.ticklabel_format(axis="y", useOffset=False)
        if title == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        if len(series) > 1 or "loss" in title:
            ax.legend(fontsize=7, loc="best")
        if n:
            lo, hi = min(epochs), max(epochs)
            pad = 0.5 if lo == hi else 0.03 * (hi - lo)
            ax.set_xlim(lo - pad, hi + pad)
    return save_figure(fig, out)

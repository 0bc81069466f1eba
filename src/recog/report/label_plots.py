"""The training labels' picture (Ultralytics' labels.jpg) and detection's F1-confidence curve.

`plot_labels` draws a `labels` figure record (recog.data.label_stats):
counts per class, and where the record has them box (w, h) and centre
positions as 2-D histograms in fractions of the image, and each class's share
of the labelled pixels.  `plot_f1_confidence` draws an `f1_confidence` record
(recog.metrics.box_calibration): F1, precision and recall against the score
threshold, the best-F1 threshold marked.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from recog.report.render import save_figure, unit_axes

_BLUE, _RED = "#4363d8", "#cf222e"


def _bars(ax: Any, names: list[str], values: list[float], *, ylabel: str, title: str) -> None:
    ax.bar(range(len(names)), values, color=_BLUE)
    ax.set_xticks(range(len(names)))
    size = max(4.0, min(9.0, 300 / max(len(names), 1)))
    ax.set_xticklabels(names, rotation=90 if len(names) > 6 else 0, fontsize=size)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _density(ax: Any, points: np.ndarray, *, xlabel: str, ylabel: str, title: str,
             flip: bool = False) -> None:  # fmt: skip
    if len(points):
        ax.hist2d(points[:, 0], points[:, 1], bins=40, range=[[0, 1], [0, 1]], cmap="Blues",
                  cmin=1)  # fmt: skip
    else:
        ax.text(0.5, 0.5, "no boxes", ha="center", va="center", color="gray")
    ax.set_xlim(0, 1)
    ax.set_ylim((1, 0) if flip else (0, 1))  # image rows grow downward
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)


def plot_labels(data: Mapping[str, Any], out: Path) -> Path:
    """Counts per class, then (when present) mask areas, box centres and box sizes."""
    names = list(data["labels"])
    parts = ["counts"] + [k for k in ("areas", "box_centres", "box_wh") if k in data]
    fig = Figure(figsize=(4.2 * len(parts), 4.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(parts)))
    read = f"{data['images']:,} of {data['total']:,} training images"
    fig.suptitle(f"training labels ({read})", fontsize=11)
    for ax, part in zip(axes, parts, strict=True):
        if part == "counts":
            _bars(ax, names, data["counts"], ylabel=data["count_of"],
                  title=f"{data['count_of']} per class")  # fmt: skip
        elif part == "areas":
            _bars(ax, names, data["areas"], ylabel="share of labelled pixels",
                  title="mask area per class")  # fmt: skip
        elif part == "box_centres":
            points = np.asarray(data["box_centres"], dtype=float).reshape(-1, 2)
            _density(ax, points, xlabel="centre x / image width",
                     ylabel="centre y / image height", title="box centres", flip=True)  # fmt: skip
        else:
            points = np.asarray(data["box_wh"], dtype=float).reshape(-1, 2)
            _density(ax, points, xlabel="box width / image width",
                     ylabel="box height / image height", title="box sizes")  # fmt: skip
    return save_figure(fig, out)


def plot_f1_confidence(data: Mapping[str, Any], out: Path) -> Path:
    """F1, precision and recall against the score threshold; the best F1 as a dashed line;
    each class's own F1 curve thin beneath (named in the legend up to ten classes)."""
    t = np.asarray(data["thresholds"], dtype=float)
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    per_class = data.get("per_class") or []
    tab20 = colormaps["tab20"]  # class k in colour k, as in every drawing (tasks/drawing.py)
    # Ultralytics' picture: a thin line per class under the bold pooled one; named in the
    # legend while that stays readable
    named = len(per_class) <= 10
    for curve in per_class:
        ax.plot(t, curve["f1"], linewidth=0.9, alpha=0.8 if named else 0.35,
                color=tab20(int(curve["class_id"]) % 20) if named else "grey",
                label=f"{curve['label']} {curve['best_f1']:.2f} at {curve['best_threshold']:.2f}"
                if named else None)  # fmt: skip
    ax.plot(
        t, data["f1"], color="black", linewidth=2, label="F1 (all classes)" if per_class else "F1"
    )
    ax.plot(t, data["precision"], color=_BLUE, linewidth=1.2, label="precision")
    ax.plot(t, data["recall"], color="#1a7f37", linewidth=1.2, label="recall")
    best, f1 = float(data["best_threshold"]), float(data["best_f1"])
    ax.axvline(best, color=_RED, linestyle="--", linewidth=1.2,
               label=f"best F1 {f1:.3f} at confidence {best:.3f}")  # fmt: skip
    unit_axes(
        ax,
        xlabel="confidence threshold (boxes scored at least this are kept)",
        ylabel="F1 / precision / recall",
        title="F1-confidence (boxes matched at IoU 0.5, all classes)",
    )
    return save_figure(fig, out)

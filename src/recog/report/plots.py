"""Report figures as PNG files: confusion matrices, PR curves, reliability diagrams, sample
grids (training curves: `curves.py`; label statistics and F1-confidence: `label_plots.py`).

Each function builds a `matplotlib.figure.Figure` and writes it with
`render.save_figure` (atomic, no pyplot); each returns the path it wrote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont
from matplotlib.ft2font import FT2Font

from recog.metrics.base import Figure as MetricFigure
from recog.report.curves import plot_curves as plot_curves  # re-exported: its old home
from recog.report.render import save_figure, unit_axes

_GREEN, _RED, _BLACK = "#1a7f37", "#cf222e", "#000000"


_save = save_figure


# ---------------------------------------------------------------- confusion matrix


def plot_confusion(
    matrix: list[list[int]],
    class_names: list[str],
    out: Path,
    *,
    titles: Sequence[str] = ("counts", "row-normalized (recall)"),
    xlabel: str = "predicted",
    ylabel: str = "true",
    skip_corner: bool = False,
) -> Path:
    """Counts and row-normalized rates (two `titles`), or the rates alone (one title);
    rows = true class, columns = predicted.  `skip_corner` leaves the last cell blank
    (detection's background x background, which nothing counts).

    Cells carry their numbers while they fit (about 30 classes); beyond that the
    colour alone speaks, and the tick labels shrink so that ~50 names still fit.
    """
    counts = np.asarray(matrix, dtype=np.int64).reshape(len(class_names), len(class_names))
    c = counts.shape[0]
    row_sums = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, row_sums, out=np.zeros(counts.shape, dtype=float), where=row_sums > 0)
    side = min(max(4.0, 0.22 * c + 2.0), 14.0)  # inches per panel
    panels = [(counts, "d"), (rates, ".2f")][-len(titles) :]
    fig = Figure(figsize=(len(panels) * side + 1.5, side + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    # a cell's height in points, leaving a quarter of the panel to the labels
    cell_points = 72 * 0.75 * side / max(c, 1)
    tick_size = max(3.0, min(9.0, 0.8 * cell_points))
    cell_text = min(10.0, 0.33 * cell_points)  # "0.00" must fit inside its cell
    annotate = cell_text >= 5.0
    for ax, (data, fmt), title in zip(axes, panels, titles, strict=True):
        # rates on a fixed 0..1 scale so two reports compare by eye
        vmax = 1.0 if fmt != "d" else max(float(data.max(initial=0)), 1.0)
        image = ax.imshow(data, cmap="Blues", vmin=0, vmax=vmax, interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xticks(range(c))
        ax.set_yticks(range(c))
        ax.set_xticklabels(class_names, rotation=90, fontsize=tick_size)
        ax.set_yticklabels(class_names, fontsize=tick_size)
        if annotate:
            for i in range(c):
                for j in range(c):
                    if skip_corner and i == j == c - 1:
                        continue
                    value = data[i, j]
                    ax.text(
                        j,
                        i,
                        format(value, fmt),
                        ha="center",
                        va="center",
                        fontsize=cell_text,
                        color="white" if value > 0.55 * vmax else "black",
                    )
    return _save(fig, out)


def plot_pr_curves(
    precision: np.ndarray, recall: np.ndarray, class_names: list[str], out: Path
) -> Path:
    """Precision against recall, one line per class with ground truth (precision -1
    where it has none) and their mean in black; the legend lists each class's AP
    (the curve's mean) up to 20 classes.  precision: (R, K); recall: (R,)."""
    present = [k for k in range(precision.shape[1]) if (precision[:, k] > -1).any()]
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.subplots()
    for k in present:
        label = (
            f"{class_names[k]} {float(precision[:, k].mean()):.3f}" if len(present) <= 20 else None
        )
        ax.plot(recall, precision[:, k], linewidth=1, alpha=0.8, label=label)
    mean_curve = precision[:, present].mean(axis=1)
    ax.plot(
        recall,
        mean_curve,
        color="black",
        linewidth=2.5,
        label=f"all classes mAP@0.5 {float(mean_curve.mean()):.3f}",
    )
    unit_axes(ax, xlabel="recall", ylabel="precision", title="precision-recall at IoU 0.5")
    return _save(fig, out)


def plot_reliability(
    edges: Sequence[float],
    count: Sequence[int],
    confidence: Sequence[float | None],
    accuracy: Sequence[float | None],
    out: Path,
    *,
    ece: float | None = None,
    title: str = "reliability",
    ylabel: str = "accuracy",
) -> Path:
    """The reliability diagram: per confidence bin, accuracy as a bar against the diagonal
    (the gap to the bin's mean confidence shaded red), and below it how many images fell
    in each bin.  A calibrated model's bars follow the diagonal."""
    lo = np.asarray(edges[:-1], dtype=float)
    width = np.diff(np.asarray(edges, dtype=float))
    acc = np.array([np.nan if a is None else a for a in accuracy], dtype=float)
    conf = np.array([np.nan if c is None else c for c in confidence], dtype=float)
    fig = Figure(figsize=(6, 6.5), layout="constrained")
    ax, ax_count = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    filled = ~np.isnan(acc)
    ax.bar(
        lo[filled],
        acc[filled],
        width=width[filled],
        align="edge",
        color="#4363d8",
        edgecolor="white",
        label=ylabel,
    )
    gap_lo, gap_hi = np.minimum(acc, conf), np.maximum(acc, conf)
    ax.bar(
        lo[filled],
        (gap_hi - gap_lo)[filled],
        bottom=gap_lo[filled],
        width=width[filled],
        align="edge",
        color=_RED,
        alpha=0.35,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1, label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title if ece is None else f"{title}, ECE {ece:.4f}")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax_count.bar(lo, count, width=width, align="edge", color="#808080", edgecolor="white")
    ax_count.set_xlabel("top-1 probability" if ylabel == "accuracy" else "score")
    ax_count.set_ylabel("images")
    ax_count.grid(alpha=0.3)
    return _save(fig, out)


def draw_figures(figures: Sequence[MetricFigure], out_dir: Path) -> list[Path]:
    """Each accumulator figure as out_dir/<file>.png; returns the paths written."""
    written = []
    for figure in figures:
        d, out = figure.data, Path(out_dir) / f"{figure.file}.png"
        if figure.kind == "confusion":
            written.append(
                plot_confusion(
                    d["matrix"],
                    d["labels"],
                    out,
                    titles=d.get("titles", ("counts", "row-normalized (recall)")),
                    xlabel=d.get("xlabel", "predicted"),
                    ylabel=d.get("ylabel", "true"),
                    skip_corner=d.get("skip_corner", False),
                )
            )
        elif figure.kind == "pr_curves":
            written.append(plot_pr_curves(d["precision"], d["recall"], d["labels"], out))
        elif figure.kind == "reliability":
            written.append(
                plot_reliability(
                    d["edges"],
                    d["count"],
                    d["confidence"],
                    d["accuracy"],
                    out,
                    ece=d.get("ece"),
                    title=d.get("title", "reliability"),
                    ylabel=d.get("ylabel", "accuracy"),
                )
            )
        elif figure.kind == "f1_confidence":
            from recog.report.label_plots import plot_f1_confidence

            written.append(plot_f1_confidence(d, out))
        elif figure.kind == "labels":
            from recog.report.label_plots import plot_labels

            written.append(plot_labels(d, out))
        else:
            raise ValueError(f"no drawing for figure kind {figure.kind!r}")
    return written


# ---------------------------------------------------------------- sample grid


def _marks(font: FontProperties) -> tuple[str, str]:
    """✓/✗ when the title font has the glyphs, else plain words."""
    try:
        face = FT2Font(findfont(font))
        if face.get_char_index(ord("✓")) and face.get_char_index(ord("✗")):
            return "✓", "✗"
    except (OSError, RuntimeError, ValueError):
        pass
    return "OK", "WRONG"


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, H, W) uint8 -> (H, W, 3) uint8 for imshow."""
    image = image.detach().cpu()
    if image.ndim == 2:
        image = image.unsqueeze(0)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    if image.dtype != torch.uint8:
        image = (image.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return image[:3].permute(1, 2, 0).numpy()


def plot_sample_grid(
    images: list[torch.Tensor],
    titles: list[str],
    correct: list[bool | None],
    out: Path,
    *,
    cols: int = 6,
    legend: Sequence[tuple[str, tuple[int, int, int]]] = (),
) -> Path:
    """Images in a grid, each titled; green ✓ when correct, red ✗ when wrong, black when unknown.

    images: (3, H, W) uint8 each (raw or already drawn on).  legend: (name, RGB) of the
    colours the drawings use, shown as a legend under the grid.
    """
    if not (len(images) == len(titles) == len(correct)):
        raise ValueError(f"{len(images)} images, {len(titles)} titles, {len(correct)} flags")
    count = max(len(images), 1)
    cols = max(1, min(cols, count))
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(2.4 * cols, 2.7 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    ok_mark, wrong_mark = _marks(FontProperties())
    for ax in axes:
        ax.axis("off")
    for ax, image, title, flag in zip(axes, images, titles, correct, strict=False):
        ax.imshow(_to_hwc(image), interpolation="bilinear")
        if flag is None:
            text, colour = title, _BLACK
        elif flag:
            text, colour = f"{ok_mark} {title}", _GREEN
        else:
            text, colour = f"{wrong_mark} {title}", _RED
        ax.set_title(text, color=colour, fontsize=9)
    if legend:
        from matplotlib.patches import Patch

        handles = [Patch(color=[c / 255 for c in rgb], label=name) for name, rgb in legend]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6),
                   fontsize=9, frameon=False)  # fmt: skip
    return _save(fig, out)


# ---------------------------------------------------------------- robustness


def plot_robustness(results: Sequence[dict], out: Path) -> Path:
    """The robustness curve: each attack's metric against eps (in /255), the clean value at 0.

    results: `robustness.json` records (`attack`, `norm`, `metric`, `clean`, `robust`).
    """
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    metric = results[0]["metric"] if results else "metric"
    for record in results:
        name = record["metric"]
        xs = [0.0] + [row["eps"] * 255 for row in record["robust"]]
        ys = [record["clean"].get(name, math.nan)] + [
            math.nan if row.get(name) is None else row[name] for row in record["robust"]
        ]
        label = f"{record['attack']} ({record['norm']}, {record.get('steps', '?')} steps) {name}"
        ax.plot(xs, ys, marker="o", markersize=4, label=label)
    ax.set_xlabel("eps (pixel levels of 255)")
    ax.set_ylabel(f"{metric} under attack")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title("robustness")
    if results:
        ax.legend(fontsize=8, loc="best")
    return _save(fig, out)


def plot_attack_examples(rows: Sequence[tuple[torch.Tensor, str, torch.Tensor, str, torch.Tensor]],
                         out: Path) -> Path:  # fmt: skip
    """One row per image: clean (drawn, titled), adversarial (drawn, titled), perturbation.

    rows: (clean (3, H, W) uint8, its title, adversarial uint8, its title, perturbation
    (3, H, W) float, already magnified into [0, 1]).
    """
    count = max(1, len(rows))
    fig = Figure(figsize=(7.5, 2.6 * count), layout="constrained")
    axes = np.atleast_2d(fig.subplots(count, 3, squeeze=False))
    for ax in axes.ravel():
        ax.axis("off")
    for (clean, clean_title, adv, adv_title, delta), line in zip(rows, axes, strict=False):
        for ax, image, title in zip(
            line,
            (clean, adv, delta),
            (clean_title, adv_title, "perturbation (magnified)"),
            strict=True,
        ):
            ax.imshow(_to_hwc(image), interpolation="nearest")
            ax.set_title(title, fontsize=9)
    return _save(fig, out)


def bench_plot(record: dict, out: Path) -> Path:
    """`recog bench`: images/s per backend at each batch, the matmul ceiling as a line (GFLOP/s axis)."""
    rows = [r for r in record["rows"] if "images_per_second" in r]
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    batches = sorted({r["batch"] for r in rows})
    fig = Figure(figsize=(7.2, 4.2), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(batches))
    for j, batch in enumerate(batches):
        ys = [next((r["gflops"] for r in rows if r["backend"] == b and r["batch"] == batch), 0.0)
              for b in backends]  # fmt: skip
        ax.bar([i + j * width for i in range(len(backends))], ys, width, label=f"batch {batch}")
    ax.axhline(record["peak_gflops"], color=_RED, linestyle="--", label="fp32 matmul rate")
    ax.set_xticks([i + width * (len(batches) - 1) / 2 for i in range(len(backends))], backends,
                  rotation=20, fontsize=8)  # fmt: skip
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title(f"{record['model']} at {record['img_size']} px")
    ax.legend(fontsize=8)
    return _save(fig, out)

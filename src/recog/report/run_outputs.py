"""A run's human-facing outputs: metrics.json, plots/ and report.html.

Shared by `recog train` (after the last epoch) and `recog val` (on new
data), so both leave the same files for the same kind of evaluation.
Every picture the report embeds is also a PNG under `plots/`: `curves.png`,
`labels.png` (the training labels), `train_batch.png` (the first training
batch as the model saw it), the validation figures and `samples.png`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recog.io import atomic_write_text
from recog.metrics.base import Accumulator
from recog.tasks.base import Task
from recog.types import METRIC_LABELS, Batch, Prediction, Sample

if TYPE_CHECKING:
    from recog.data.splits import DataSplits

#: training images shown in train_batch.png at most
TRAIN_PANELS = 16


def write_outputs(
    out_dir: Path,
    *,
    task: Task,
    acc: Accumulator,
    extra_metrics: dict[str, Any],
    samples: Sequence[tuple[Sample, Prediction]],
    results_csv: Path | None,
    config: dict[str, Any],
    title: str,
    summary: dict[str, Any],
    splits: DataSplits | None = None,
    train_batch: Batch | None = None,
) -> dict[str, Any]:
    """Write metrics.json, plots and report.html under `out_dir`; returns the metrics.

    splits: the run's data, for the training labels' statistics (`ReportFacet.label_figures`);
    train_batch: a batch from the training loader (`ReportFacet.train_panels`); both left out
    by `recog val`, which trains nothing."""
    from recog.report.curves import panels, read_columns
    from recog.report.facet import REPORT
    from recog.report.html import write_report
    from recog.report.plots import draw_figures, plot_curves, plot_sample_grid

    metrics = {**acc.compute(), **extra_metrics}
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    plots_dir = out_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    labels = {k: task.scores.label(k) for k in {*METRIC_LABELS, *metrics, "per_class"}}
    curves, curve_panels = None, []
    if results_csv is not None and results_csv.is_file():
        curves = plot_curves(results_csv, plots_dir / "curves.png", labels=labels)
        curve_panels = [labels.get(t, t) for t in panels(read_columns(results_csv))]
    views = REPORT.of(task)
    label_plots = draw_figures(views.label_figures(task, splits), plots_dir) if splits else []
    shown = None
    if train_batch is not None:
        panels = views.train_panels(task, train_batch)[:TRAIN_PANELS]
        if panels:
            images, titles, correct = (list(column) for column in zip(*panels, strict=True))
            shown = plot_sample_grid(images, titles, correct, plots_dir / "train_batch.png",
                                     cols=4)  # fmt: skip
    plots = draw_figures(acc.figures(task.class_names), plots_dir)
    grid = None
    panels = views.sample_panels(task, samples)
    if panels:
        images, titles, correct = (list(column) for column in zip(*panels, strict=True))
        grid = plot_sample_grid(images, titles, correct, plots_dir / "samples.png",
                                cols=views.sample_columns, legend=views.legend(task))  # fmt: skip
    write_report(
        out_dir / "report.html",
        title=title,
        summary=summary,
        metrics=metrics,
        plots=plots,
        config=config,
        class_names=task.class_names,
        labels=labels,
        curves=curves,
        curve_panels=curve_panels,
        label_plots=label_plots,
        train_samples=shown,
        samples=grid,
        sample_caption=views.sample_caption,
        legend=views.legend(task),
    )
    return metrics

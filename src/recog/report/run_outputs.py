"""A run's human-facing outputs: metrics.json, plots/ and report.html.

Shared by `recog train` (after the last epoch) and `recog val` (on new
data), so both leave the same files for the same kind of evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recog.io import atomic_write_text
from recog.metrics.base import Accumulator
from recog.tasks.base import Task
from recog.types import Prediction, Sample


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
) -> dict[str, Any]:
    """Write metrics.json, plots and report.html under `out_dir`; returns the metrics."""
    from recog.report.html import write_report
    from recog.report.plots import draw_figures, plot_curves, plot_sample_grid

    metrics = {**acc.compute(), **extra_metrics}
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    plots_dir = out_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    plots: list[Path] = []
    if results_csv is not None and results_csv.is_file():
        plots.append(plot_curves(results_csv, plots_dir / "curves.png"))
    plots += draw_figures(acc.figures(task.class_names), plots_dir)
    panels = task.sample_panels(samples)
    if panels:
        images, titles, correct = (list(column) for column in zip(*panels, strict=True))
        plots.append(plot_sample_grid(images, titles, correct, plots_dir / "samples.png"))
    write_report(
        out_dir / "report.html",
        title=title,
        summary=summary,
        metrics=metrics,
        plots=plots,
        config=config,
        class_names=task.class_names,
    )
    return metrics

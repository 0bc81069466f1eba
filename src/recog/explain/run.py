"""The two jobs `recog explain` does: explain given images into files, and score the methods on a dataset.

Called by `recog.api.Recognizer.explain` and `score_explanations`, which
hand over the run's task, model and (for the report) run directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recog.errors import RecogError
from recog.explain.explainer import Explainer, Explanation
from recog.explain.methods import METHODS
from recog.explain.output import (
    report_section,
    save_explanation,
    unique_stems,
    write_faithfulness,
)
from recog.io import atomic_write_text
from recog.tasks.base import Task


def check_methods(methods: Sequence[str]) -> list[str]:
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise RecogError(f"--method {bad[0]}: not one of {', '.join(METHODS)}")
    if not methods:
        raise RecogError("no --method given")
    return list(dict.fromkeys(methods))


def class_index(task: Task, target: str | int | None) -> int | None:
    """`--target` (a class name, or its index) as an index; None: the predicted class(es)."""
    if target is None:
        return None
    names = task.class_names
    if isinstance(target, str) and target in names:
        return names.index(target)
    if str(target).isdigit() and int(target) < len(names):
        return int(target)
    raise RecogError(f"--target {target}: not a class of this model ({', '.join(names[:10])})")


def explain_images(
    task: Task,
    model: nn.Module,
    images: Sequence[tuple[str, torch.Tensor]],
    *,
    methods: Sequence[str],
    target: str | int | None = None,
    save_dir: Path | None = None,
    head: tuple[str, ...] = (),
    device: torch.device | str = "cpu",
    steps: int = 20,
) -> list[Explanation]:
    """Maps for (name, uint8 (3, H, W) original image) pairs; with `save_dir`, the files
    (recog.explain.output) and an `explanations.json` index of them."""
    methods = check_methods(methods)
    label = class_index(task, target)
    explainer = Explainer(task, model, head=head, device=device)
    stems = unique_stems([name for name, _ in images])
    found: list[Explanation] = []
    index: list[dict[str, Any]] = []
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    for stem, (name, image) in zip(stems, images, strict=True):
        prepared, _ = task.prepare(image)
        maps = explainer.explain(prepared, name, methods=methods, label=label, steps=steps)
        found += maps
        if save_dir is None:
            continue
        order = list(dict.fromkeys(id(e.target) for e in maps))
        by_target = {t: k for k, t in enumerate(order)}
        for e in maps:
            files = save_explanation(save_dir, stem, by_target[id(e.target)], prepared, e)
            index.append({"image": name, "target": e.target.name, "method": e.method,
                          "png": files[0].name, "npy": files[1].name, **e.scores})  # fmt: skip
    if save_dir is not None:
        atomic_write_text(save_dir / "explanations.json", json.dumps(index, indent=1))
    return found


def pick(n_total: int, n: int) -> list[int]:
    """`n` indices spread evenly over `n_total` (all of them when n >= n_total)."""
    if n >= n_total:
        return list(range(n_total))
    return sorted({int(round(i)) for i in np.linspace(0, n_total - 1, n)})


def score_methods(
    task: Task,
    model: nn.Module,
    dataset: Any,
    *,
    methods: Sequence[str],
    images: int,
    steps: int,
    save_dir: Path,
    data_name: str,
    head: tuple[str, ...] = (),
    device: torch.device | str = "cpu",
    report: Path | None = None,
    levels: int = 4,
) -> dict[str, dict[str, float]]:
    """The faithfulness table of `methods` on `images` images of `dataset` (samples at the
    model's input size), written to `save_dir/faithfulness.json` and, when `report` exists,
    as that report's explanations section."""
    from recog.report.html import upsert_section

    methods = check_methods(methods)
    if len(dataset) == 0:
        raise RecogError(f"{data_name}: no images to score explanations on")
    start = time.perf_counter()
    chosen = [dataset[i].image for i in pick(len(dataset), images)]
    explainer = Explainer(task, model, head=head, device=device)
    table, examples = explainer.score(chosen, methods=methods, steps=steps, levels=levels)
    info = {
        "data": data_name,
        "images": len(chosen),
        "steps": steps,
        "levels": levels,
        "seconds": round(time.perf_counter() - start, 2),
        "ranked_by": "insertion_auc - deletion_auc",
    }
    save_dir.mkdir(parents=True, exist_ok=True)
    write_faithfulness(save_dir, table, info)
    if report is not None and report.is_file():
        shown = [(chosen[0], e) for e in examples[:6]]
        upsert_section(report, "explanations", "Explanations", report_section(table, shown, info))
    return table

"""The check after every export: the file against the torch model on the run's validation images.

Three numbers, all on the same validation split:
- `max_abs_diff`: the largest absolute difference between the graph's outputs and the
  torch model's (logits; YOLO's decoded boxes in pixels and scores; an R-CNN's
  detections), over the first `images` validation images; outputs whose lengths differ
  (an R-CNN keeping one detection more at its score threshold) are counted in
  `outputs_of_another_length` instead;
- `top1_agreement` (models that answer class logits): the fraction of those images
  whose top class is the same;
- the task's main metric with the torch model (`before`) and with the file (`after`)
  over the whole split, through the same evaluator `recog val` uses.

A drop of the metric beyond the tolerance is an error (`ParityError`), not a warning:
the caller removes the file it wrote.  So is an output that is not finite on either side
(`not_finite_torch`, `not_finite_exported`: images with NaN or inf), which the difference
cannot measure (NaN compares false: max(0, NaN) is 0) nor the metric see (argmax of NaN is
a class).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from recog.confidence.facet import CONFIDENCE
from recog.deploy.backend import ExportedModel
from recog.deploy.export import pixel_graph
from recog.deploy.graph import TrainedRun
from recog.engine.distributed import DistContext
from recog.engine.trainer import final_evaluation
from recog.errors import RecogError


class ParityError(RecogError):
    """An export whose metric fell more than its tolerance; carries the measured record."""

    def __init__(self, message: str, record: dict[str, Any]) -> None:
        super().__init__(message)
        self.record = record


def output_agreement(
    rec: TrainedRun, exported: ExportedModel, dataset: Dataset, *, images: int = 32
) -> dict[str, float]:
    """`max_abs_diff` of the graph outputs and, for class logits, `top1_agreement`; images
    with an output not finite are counted apart, for each side."""
    graph, _ = pixel_graph(rec)
    worst, same, seen, unequal = 0.0, 0, 0, 0
    broken = {"torch": 0, "exported": 0}
    n = min(images, len(dataset))  # type: ignore[arg-type]
    for i in range(n):
        # one image at a time: a task may keep each image's own size
        pixels = dataset[i].image.unsqueeze(0)
        with torch.inference_mode():
            ours = graph(pixels)
        ours = list(ours) if isinstance(ours, tuple | list) else [ours]
        theirs = exported.raw(pixels)
        for side, outputs in (("torch", ours), ("exported", theirs)):
            broken[side] += not all(bool(torch.isfinite(o.float()).all()) for o in outputs)
        if any(a.shape != b.shape for a, b in zip(ours, theirs, strict=True)):
            unequal += 1  # an R-CNN kept another number of detections: noise at a threshold
        else:
            for a, b in zip(ours, theirs, strict=True):
                if a.numel():
                    worst = max(worst, float((a.float() - b.float()).abs().max()))
        if CONFIDENCE.has(rec.task):
            same += int(ours[0].argmax(1).item() == theirs[0].argmax(1).item())
        seen += 1
    out = {"max_abs_diff": worst, "images_compared": float(seen)}
    if unequal:
        out["outputs_of_another_length"] = float(unequal)
    out |= {f"not_finite_{side}": float(n) for side, n in broken.items() if n}
    if CONFIDENCE.has(rec.task) and seen:
        out["top1_agreement"] = same / seen
    return out


def metric_of(rec: TrainedRun, model: torch.nn.Module, dataset: Dataset) -> dict[str, float]:
    acc = final_evaluation(
        rec.task,
        model,
        dataset,
        DistContext(device=torch.device("cpu")),
        batch_size=int(rec.config.batch_size) * 2,
    )
    return {k: float(v) for k, v in acc.compute().items() if isinstance(v, int | float)}


def check_parity(
    rec: TrainedRun,
    exported: ExportedModel,
    dataset: Dataset,
    *,
    tolerance: float,
    before: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The parity record of `exported` (see the module docstring); `ParityError` past `tolerance`."""
    metric = str(rec.task.scores.primary)
    if before is None:
        before = metric_of(rec, rec.model, dataset)
    after = metric_of(rec, exported, dataset)
    record: dict[str, Any] = {
        **output_agreement(rec, exported, dataset),
        "metric": metric,
        "before": before[metric],
        "after": after[metric],
        "drop": before[metric] - after[metric],
        "tolerance": tolerance,
        "val_images": len(dataset),  # type: ignore[arg-type]
    }
    record[f"{metric}_before"], record[f"{metric}_after"] = record["before"], record["after"]
    compared = int(record["images_compared"])
    if record.get("not_finite_torch"):  # the run itself is broken: no other try can help
        raise RecogError(
            f"{rec.run_dir}: the model's outputs are not finite (NaN or inf) on "
            f"{int(record['not_finite_torch'])} of {compared} validation images; nothing "
            "exported (its weights diverged: train again, e.g. with a lower --lr)"
        )
    if record.get("not_finite_exported"):
        raise ParityError(
            f"{exported.session.path}: outputs not finite (NaN or inf) on "
            f"{int(record['not_finite_exported'])} of {compared} validation images where the "
            "model's are finite",
            record,
        )
    if record["drop"] > tolerance + 1e-12:
        raise ParityError(
            f"{exported.session.path}: {metric} fell from {record['before']:.4f} to "
            f"{record['after']:.4f} (drop {record['drop']:.4f} > tolerance {tolerance})",
            record,
        )
    return record

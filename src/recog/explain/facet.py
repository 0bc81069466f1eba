"""What an explanation asks of a task: the targets of a prediction and their score.

`EXPLAIN.of(task)` answers for each task (a class for a classifier, a shown
box for a detector or an instance segmenter, a class region for a semantic
segmenter); `Explainer` and `TargetModel` ask it, never the task, so one loop
serves every task.  Images arrive as float (B, 3, H, W) in [0, 1] at the
model's input size; normalization happens here, so maps live in pixel space.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from recog.tasks.base import Task
from recog.tasks.classify import ClassifyTask
from recog.tasks.detect import DetectTask
from recog.tasks.facets import FacetTable
from recog.tasks.segment import SegmentTask
from recog.types import ExplainTarget, Prediction

#: boxes explained per image at most (the highest-scoring shown ones)
MAX_BOXES = 20


class ExplainFacet(Protocol):
    def targets(
        self, task: Task, prediction: Prediction, *, label: int | None = None
    ) -> list[ExplainTarget]:
        """What an explanation of `prediction` (made at the model's input size, `meta` None)
        is about, one `ExplainTarget` each; with `label`, only that class's."""
        ...

    def score(
        self,
        task: Task,
        model: nn.Module,
        images: torch.Tensor,
        target: ExplainTarget,
        *,
        gradient: bool = False,
    ) -> torch.Tensor:
        """(B,) the model's score for `target` on float images in [0, 1] at the input size.

        A probability-like value in [0, 1] (what deletion and insertion curves
        trace); with `gradient`, the evidence gradient methods follow (a
        logit where the task has one), differentiable with respect to `images`.
        """
        ...


class ClassifyExplain:
    """The predicted (or asked) class; its probability, or its logit for gradients."""

    def targets(
        self, task: ClassifyTask, prediction: Prediction, *, label: int | None = None
    ) -> list[ExplainTarget]:
        k = int(prediction.labels) if label is None else int(label)
        return [ExplainTarget(name=task.class_names[k], label=k)]

    def score(
        self,
        task: ClassifyTask,
        model: nn.Module,
        images: torch.Tensor,
        target: ExplainTarget,
        *,
        gradient: bool = False,
    ) -> torch.Tensor:
        logits = model(task.normalize(images)).float()
        return logits[:, target.label] if gradient else logits.softmax(1)[:, target.label]


class DetectExplain:
    """One target per shown box; D-RISE's similarity as its score."""

    def targets(
        self, task: DetectTask, prediction: Prediction, *, label: int | None = None
    ) -> list[ExplainTarget]:
        """One target per shown box (score >= the display threshold), best first."""
        # the boxes the task draws and lists (its own rule: the selected conf, else the
        # display threshold), so a map is of a box the user sees
        keep = task.shown(prediction)
        if label is not None:
            keep &= prediction.labels == int(label)
        order = prediction.scores[keep].argsort(descending=True)[:MAX_BOXES]
        boxes, labels, scores = (
            t[keep][order] for t in (prediction.boxes, prediction.labels, prediction.scores)
        )
        return [
            ExplainTarget(
                name=f"{task.class_names[int(c)]} {float(s):.2f} #{i + 1}", label=int(c), box=b
            )
            for i, (b, c, s) in enumerate(zip(boxes, labels, scores, strict=True))
        ]

    def score(
        self,
        task: DetectTask,
        model: nn.Module,
        images: torch.Tensor,
        target: ExplainTarget,
        *,
        gradient: bool = False,
    ) -> torch.Tensor:
        """D-RISE's similarity (Petsiuk et al. 2021), for one class: the best
        IoU x score among the detections of the target's class; differentiable
        through the detector's kept scores and boxes."""
        from torchvision.ops import box_iou

        out = []
        for det in model(task.normalize(images)):
            same = det["labels"] == target.label
            if not bool(same.any()):
                out.append(det["scores"].sum() * 0.0)  # nothing of that class: 0, still a graph
                continue
            box = target.box.to(det["boxes"].device, torch.float32)[None]
            iou = box_iou(box, det["boxes"][same].float())[0]
            out.append((iou * det["scores"][same].float()).max())
        return torch.stack(out)


class SegmentExplain:
    """One target per class region found in the mask."""

    def targets(
        self, task: SegmentTask, prediction: Prediction, *, label: int | None = None
    ) -> list[ExplainTarget]:
        """One target per class found in the mask (or `label`'s, found or not)."""
        found = [int(k) for k in prediction.mask.unique() if int(k) < task.num_classes]
        wanted = found if label is None else [int(label)]
        return [
            ExplainTarget(name=task.class_names[k], label=k, region=prediction.mask == k)
            for k in wanted
        ]

    def score(
        self,
        task: SegmentTask,
        model: nn.Module,
        images: torch.Tensor,
        target: ExplainTarget,
        *,
        gradient: bool = False,
    ) -> torch.Tensor:
        """The class's mean logit (gradient) or probability over its predicted region
        (the whole image where the class was not found)."""
        logits = model(task.normalize(images)).float()
        region = target.region.to(logits.device, torch.float32)
        if region.shape != logits.shape[-2:] or not bool(region.any()):
            region = torch.ones(logits.shape[-2:], device=logits.device)
        values = logits[:, target.label] if gradient else logits.softmax(1)[:, target.label]
        return (values * region).sum((-2, -1)) / region.sum()


EXPLAIN: FacetTable[ExplainFacet] = FacetTable(
    "{task} models have no explanations",
    # Mask R-CNN's instances are explained as a detector's boxes
    classify=ClassifyExplain, detect=DetectExplain, segment=SegmentExplain, instance=DetectExplain,
)  # fmt: skip

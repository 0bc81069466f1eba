"""What an attack asks of a task: the loss it raises, the model's answer as a ground truth, and
a detector's "vanish" objective.

`ROBUST.of(task)` answers for each task; `recog.robust.objective` and
`recog.robust.run` ask it, never the task.  Every task is attacked on its own
training loss against the ground truth unless its entry says otherwise
(`TaskLossAttacks`, written once); only detectors (Mask R-CNN's instances
included) make their objects vanish.  Images arrive as float (B, 3, H, W) in
[0, 1] at the model's input size, differentiable; the attacker puts the model
in its loss mode or eval mode (`recog.robust.objective`).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from recog.errors import RecogError
from recog.tasks.base import Task
from recog.tasks.classify import ClassifyTask
from recog.tasks.detect import DetectTask
from recog.tasks.facets import FacetTable
from recog.types import Batch, Prediction, Sample, Target


class RobustFacet(Protocol):
    def attack_loss(self, task: Task, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The scalar an untargeted attack raises against the ground truth, on `batch.images`
        as float in [0, 1] (differentiable with respect to them)."""
        ...

    def as_target(self, task: Task, prediction: Prediction) -> Target:
        """The model's own answer (at the input size) taken as the ground truth: what an
        attack on an unlabelled image (the web page's) moves the model away from."""
        ...

    def vanish_loss(self, task: Task, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """The scalar the "vanish" attack lowers on float images in [0, 1]: how much the
        model still finds objects (the model in its loss mode); only for detectors."""
        ...

    def vanish_score(self, task: Task, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """(B,) how confident the model's answers are (the model in eval mode), the vanish
        attack's second term; only for detectors."""
        ...


class TaskLossAttacks:
    """What every task gives unless its entry says otherwise: the task's own training loss
    as the attacked loss, no stand-in ground truth and nothing to make vanish."""

    def attack_loss(self, task: Task, model: nn.Module, batch: Batch) -> torch.Tensor:
        return task.loss(model, batch)["loss"]

    def as_target(self, task: Task, prediction: Prediction) -> Target:
        raise RecogError(f"{task.name} predictions cannot stand in for a ground truth")

    def vanish_loss(self, task: Task, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        raise RecogError(f"{task.name} models find no objects to make vanish (a detector's attack)")

    def vanish_score(self, task: Task, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        raise RecogError(f"{task.name} models find no objects to make vanish (a detector's attack)")


class ClassifyAttacks(TaskLossAttacks):
    def attack_loss(self, task: ClassifyTask, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Plain cross-entropy on the true labels (no smoothing, no mixing): the objective
        of the field's PGD (Madry et al. 2018) and of torchattacks."""
        return F.cross_entropy(model(task.normalize(batch.images)).float(), batch.targets)

    def as_target(self, task: Task, prediction: Prediction) -> Target:
        return Target(labels=prediction.labels.clone())


class SegmentAttacks(TaskLossAttacks):
    def as_target(self, task: Task, prediction: Prediction) -> Target:
        return Target(mask=prediction.mask.clone().long())


class DetectAttacks(TaskLossAttacks):
    def as_target(self, task: DetectTask, prediction: Prediction) -> Target:
        """The shown boxes (and their masks, for instances)."""
        keep = task.shown(prediction)  # the boxes the task draws and lists (its own rule)
        masks = None if prediction.masks is None else prediction.masks[keep]
        return Target(boxes=prediction.boxes[keep].clone(), labels=prediction.labels[keep].clone(),
                      masks=masks)  # fmt: skip

    def vanish_loss(self, task: Task, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """The detector's own training loss against an empty ground truth (TOG-vanishing,
        Chow et al. 2020): every candidate, before NMS, is trained as background, so
        lowering it makes the objects vanish.  Summing the kept boxes' scores instead was
        dominated by the hundreds of faint ones down to 0.0025 and left raccoon mAP where
        it was at 8/255 (issue 13's note); this gradient reaches every candidate."""
        h, w = images.shape[-2:]
        empty = Target(labels=torch.zeros(0, dtype=torch.long, device=images.device),
                       boxes=images.new_zeros((0, 4)),
                       masks=torch.zeros((0, h, w), dtype=torch.uint8, device=images.device))  # fmt: skip
        # collate stacks the float images again, differentiably: the gradient reaches them
        return task.loss(model, task.collate([Sample(image=i, target=empty) for i in images]))[
            "loss"
        ]

    def vanish_score(self, task: Task, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """(B,) the sum of the squared scores of the kept detections (the model in eval mode):
        squared, the confident boxes that decide mAP outweigh the many faint ones.  The
        second half of the vanish objective: SSD's loss mines negatives in proportion to
        the objects, so against an empty truth it is 0 with no gradient at all."""
        return torch.stack(
            [det["scores"].float().square().sum() for det in model(task.normalize(images))]
        )


ROBUST: FacetTable[RobustFacet] = FacetTable(
    "{task} models cannot be attacked",
    # Mask R-CNN's instances are attacked as a detector's boxes (masks kept), and vanish
    classify=ClassifyAttacks, detect=DetectAttacks, segment=SegmentAttacks, instance=DetectAttacks,
)  # fmt: skip

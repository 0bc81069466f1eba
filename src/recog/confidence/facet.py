"""What calibration and "none of these" ask of a task: class logits, and reference images.

`CONFIDENCE.has(task)` says whether a task's model answers one row of class
logits per image, so that temperature scaling, out-of-distribution scores and
the class-logit attacks (CW, AutoAttack, TRADES, targeted) apply; only
classifiers do.  `CONFIDENCE.of(task)` gives the logits and the training
images the feature scores compare with, or the one sentence a user reads for
any other task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from recog.tasks.base import Task
from recog.tasks.classify import ClassifyTask
from recog.tasks.facets import FacetTable

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from recog.config import TrainConfig


class ConfidenceFacet(Protocol):
    def logits(self, task: Task, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """(B, C) float class logits of a uint8 (B, 3, H, W) batch, before any soft-max
        (temperature scaling divides them)."""
        ...

    def load_reference(self, cfg: TrainConfig) -> Dataset:
        """The training images as evaluation sees them (no augmentation): the reference
        the out-of-distribution feature scores compare with."""
        ...


class ClassifyConfidence:
    @torch.no_grad()
    def logits(self, task: Task, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model(task.normalize(images)).float()

    def load_reference(self, cfg: TrainConfig) -> Dataset:
        from recog.data import eval_transform

        # the run's own training split, each image under the evaluation transform instead
        # of the augmentation (the validation images' resize and centre crop)
        train = ClassifyTask.data.splits(cfg).train
        train.transform = eval_transform(img_size=cfg.img_size, crop_pct=cfg.crop_pct)
        return train


CONFIDENCE: FacetTable[ConfidenceFacet] = FacetTable(
    "{task} models have no class logits: calibration and out-of-distribution scores are "
    "for classifiers",
    classify=ClassifyConfidence,
)  # fmt: skip

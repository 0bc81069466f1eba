"""The Task core: what the engine, the evaluator and prediction ask of a task.

The engine (train loop, evaluator, checkpointing) talks to a task only
through `Task` and `Accumulator`; it never inspects a target, a prediction or
a model type.  Classification, detection and segmentation each implement
this core in their own module.  What one feature alone asks of a task is not
here but a facet in that feature's package (`recog.tasks.facets`): the
doctor's, the report's, explanations', attacks', distillation's, calibration's,
and prediction outputs' (`recog.api.facet`), the server's and export's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from recog.errors import RecogError
from recog.metrics.base import Accumulator
from recog.names import TaskName
from recog.types import Batch, Prediction, Sample, Selection, Target, TaskScores

if TYPE_CHECKING:
    from recog.config import TrainConfig
    from recog.models.registry import ModelSpec
    from recog.recipe import TaskRecipe
    from recog.tasks.data import TaskData


def normalization(cfg: TrainConfig, spec: ModelSpec) -> tuple[list[float], list[float]]:
    """The run's input mean and std, as its config.yaml records them (the pretrained file's
    own); a run written before configs recorded them falls back to the model's."""
    return (list(cfg.mean or spec.mean), list(cfg.std or spec.std))


class Task(ABC):
    """A recognition task as the engine sees it."""

    name: ClassVar[TaskName]
    #: how the task's metrics are read and named: the main one (best checkpoint, early
    #: stopping), the headline ones, the validation loss, the task's own labels
    scores: ClassVar[TaskScores]
    #: the task's part of the training recipe (recog.recipe): default model, sizes, batch, lr
    recipe: ClassVar[TaskRecipe]
    #: where the task's data comes from (recog.tasks.data): its survey, splits, eval sets
    data: ClassVar[TaskData]

    def __init__(self, class_names: list[str], mean: Sequence[float], std: Sequence[float]):
        self.class_names = list(class_names)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    # ------------------------------------------------ building (task-specific)
    @classmethod
    @abstractmethod
    def from_config(cls, cfg: TrainConfig, class_names: list[str], spec: ModelSpec) -> Task:
        """The task as a run's config describes it."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float normalized, on the images' device.  Float images are
        taken as already in [0, 1] (an attacked batch, an explanation's), and stay
        differentiable."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        images = images.float()
        return (images - self.mean.to(images.device)) / self.std.to(images.device)

    @abstractmethod
    def prepare(
        self, image: torch.Tensor, full_size: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """One decoded (3, H, W) uint8 image -> the model's input size (uint8) and its `meta`.

        full_size: (H, W) of the whole image when it was decoded smaller, as
        `decode_size` allows; the meta (and so the predictions) refer to it."""

    def decode_size(self, width: int, height: int) -> tuple[int, int] | None:
        """The fewest pixels (width, height) `prepare` needs of an image stored at
        (width, height), so a reader may decode it smaller (JPEG's 1/2, 1/4, 1/8);
        None: every pixel (the default: a task that keeps each image's size)."""
        return None

    @abstractmethod
    def collate(self, samples: Sequence[Sample]) -> Batch: ...

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """Training losses; `loss` is the total the engine back-propagates."""

    @abstractmethod
    def predict(
        self, model: nn.Module, images: torch.Tensor, meta: Sequence[dict[str, Any]] | None = None
    ) -> list[Prediction]:
        """Post-processed predictions for a uint8 (B, 3, H, W) batch, in original-image pixels."""

    @abstractmethod
    def metrics(self) -> Accumulator: ...

    def check_selection(self, selection: Selection) -> None:
        """Nothing, or a RecogError naming the options (`--conf`, `--iou`, `--max-det`)
        that mean nothing for this task; default: any option given is refused."""
        if selection.given():
            raise RecogError(
                f"{', '.join(selection.given())}: {self.name} predictions have no scores "
                "or boxes to threshold"
            )

    def select(self, prediction: Prediction, selection: Selection) -> Prediction:
        """What `recog predict`, `Recognizer.predict` and the server keep of a `predict`
        output under `selection` (None values: the task's defaults); the one function they
        share.  Default: the prediction as it is (after `check_selection`)."""
        self.check_selection(selection)
        return prediction

    @abstractmethod
    def draw(
        self, image: torch.Tensor, prediction: Prediction, target: Target | None = None
    ) -> torch.Tensor:
        """(3, H, W) uint8 image with the prediction drawn on it."""

    def to_record(self, prediction: Prediction, *, top_k: int = 5) -> dict[str, Any]:
        """A JSON-ready summary of one prediction for CLI tables, files and the API."""
        return prediction.to_dict(self.class_names)

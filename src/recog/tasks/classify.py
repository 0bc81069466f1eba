"""Image classification behind the Task seam.

Targets are 0-d int64 class indices; predictions carry the soft-max over all
classes.  Mixup/CutMix (torchvision.transforms.v2) run inside `loss`, on the
device, after normalization, so the data loader ships plain uint8 images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from recog.errors import RecogError
from recog.metrics.base import Accumulator
from recog.names import MetricName, TaskName
from recog.recipe import FineTune, TaskRecipe
from recog.tasks.base import Task, normalization
from recog.tasks.data import CLASSIFY_DATA, TaskData
from recog.tasks.drawing import banner
from recog.types import Batch, Prediction, Sample, Selection, Target, TaskScores

if TYPE_CHECKING:
    from recog.config import TrainConfig
    from recog.models.registry import ModelSpec


class ClassifyTask(Task):
    name: ClassVar[TaskName] = TaskName.CLASSIFY
    data: ClassVar[TaskData] = CLASSIFY_DATA
    scores: ClassVar[TaskScores] = TaskScores(
        primary=MetricName.TOP1,
        headline=(MetricName.TOP1, MetricName.TOP5, MetricName.MACRO_F1, MetricName.ECE),
        # the cross-entropy of the validation images (`metrics.classification`'s nll)
        val_loss="nll",
        labels={"per_class": "F1"},
    )
    # cnn for tiny images (digits 8 px: top-1 0.997), resnet18 for photos; 2e-3 at batch 32 and
    # label smoothing 0.1 as the plain loop that set the bar (docs/recipe.md)
    recipe: ClassVar[TaskRecipe] = TaskRecipe(
        models=((64, "cnn"), (1 << 30, "resnet18")),
        size_cap_cpu=128,
        size_cap_gpu=224,
        batch_max=32,
        lr=2e-3,
        lr_batch=32,
        weight_decay=0.05,
        label_smoothing=0.1,
        finetune=FineTune(model="efficientnet_lite0"),
    )

    def __init__(
        self,
        class_names: list[str],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        img_size: int,
        crop_pct: float = 0.875,
        label_smoothing: float = 0.0,
        batch_mix: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(class_names, mean, std)
        self.img_size, self.crop_pct = img_size, crop_pct
        self.label_smoothing = label_smoothing
        self.batch_mix = batch_mix
        self._eval_transform: Callable[[torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def from_config(cls, cfg: TrainConfig, class_names: list[str], spec: ModelSpec) -> ClassifyTask:
        from recog.data import batch_mix

        return cls(
            class_names,
            *normalization(cfg, spec),
            img_size=int(cfg.img_size),
            crop_pct=float(cfg.crop_pct),
            label_smoothing=float(cfg.label_smoothing),
            batch_mix=batch_mix(mixup=cfg.mixup, cutmix=cfg.cutmix, num_classes=len(class_names)),
        )

    def prepare(
        self, image: torch.Tensor, full_size: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        if self._eval_transform is None:
            from recog.data import eval_transform

            self._eval_transform = eval_transform(img_size=self.img_size, crop_pct=self.crop_pct)
        return self._eval_transform(image), {"orig_size": full_size or tuple(image.shape[-2:])}

    def decode_size(self, width: int, height: int) -> tuple[int, int] | None:
        """The shorter side at the eval transform's resize target, the aspect kept."""
        scale = round(self.img_size / self.crop_pct) / min(width, height)
        return math.ceil(width * scale), math.ceil(height * scale)

    def collate(self, samples: Sequence[Sample]) -> Batch:
        """images (B, 3, H, W) uint8; targets (B,) int64."""
        images = torch.stack([s.image for s in samples])
        labels = torch.stack([s.target.labels for s in samples]).long()
        meta = [{"path": s.path, "orig_size": s.orig_size} for s in samples]
        return Batch(images, labels, [s.target for s in samples], meta)

    def inputs(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized images and their targets, mixed when training with Mixup/CutMix
        (y then (B, C) soft labels)."""
        x = self.normalize(batch.images)
        y = batch.targets
        if self.batch_mix is not None and model.training:
            x, y = self.batch_mix(x, y)
        return x, y

    def loss(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        x, y = self.inputs(model, batch)
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
        return {"loss": loss}

    @torch.no_grad()
    def predict(
        self, model: nn.Module, images: torch.Tensor, meta: Sequence[dict[str, Any]] | None = None
    ) -> list[Prediction]:
        probs = model(self.normalize(images)).float().softmax(dim=1).cpu()
        return [Prediction(labels=p.argmax(), scores=p) for p in probs]

    def metrics(self) -> Accumulator:
        from recog.metrics.classification import ClassificationAccumulator

        return ClassificationAccumulator(self.class_names)

    def check_selection(self, selection: Selection) -> None:
        """`conf` applies (to the listed classes); `iou` and `max_det` are about boxes."""
        refused = [f for f in selection.given() if f != "--conf"]
        if refused:
            raise RecogError(
                f"{', '.join(refused)}: a classifier finds no boxes (--top-k says how many "
                "classes to list)"
            )

    def select(self, prediction: Prediction, selection: Selection) -> Prediction:
        """`conf` (default 0: none) is the lowest probability a class needs to be listed in
        `top_k`: the answer (`label`, the arg-max) stays, so a blurred photo still says
        what it most looks like; a list left empty says no class reached `conf`."""
        self.check_selection(selection)
        return replace(prediction, conf=0.0 if selection.conf is None else selection.conf)

    def top(self, prediction: Prediction, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The best `top_k` (probabilities, class ids), less those below the selected conf."""
        values, indices = prediction.scores.topk(min(top_k, prediction.scores.numel()))
        listed = values >= (prediction.conf or 0.0)
        return values[listed], indices[listed]

    def draw(
        self, image: torch.Tensor, prediction: Prediction, target: Target | None = None
    ) -> torch.Tensor:
        """The image with a banner: predicted class and confidence (and the truth when known)."""
        text = self.title(prediction)
        if target is not None and target.labels is not None:
            text += f" (true: {self.class_names[int(target.labels)]})"
        return banner(image, text)

    def title(self, prediction: Prediction) -> str:
        """`cat 93%`, or `unknown (cat 41%)` for an image the run's rule rejected."""
        label = int(prediction.labels)
        text = f"{self.class_names[label]} {float(prediction.scores[label]):.0%}"
        return f"unknown ({text})" if prediction.unknown else text

    def to_record(self, prediction: Prediction, *, top_k: int = 5) -> dict[str, Any]:
        values, indices = self.top(prediction, top_k)
        top = [
            {"label": self.class_names[int(i)], "score": round(float(v), 6)}
            for v, i in zip(values, indices, strict=True)
        ]
        best = int(prediction.labels)
        record: dict[str, Any] = {
            "label": self.class_names[best],
            "score": round(float(prediction.scores[best]), 6),
            "top_k": top,
        }
        if prediction.ood_score is not None:
            # "none of these": no label; `top_k` still says which classes were nearest
            if prediction.unknown:
                record["label"] = None
            record["unknown"] = bool(prediction.unknown)
            record["ood_score"] = round(float(prediction.ood_score), 6)
        return record

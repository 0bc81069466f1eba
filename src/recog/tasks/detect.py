"""Object detection behind the Task seam (one job: every detector answers the same seam methods, drawing and selection included).

Detection models answer one contract (see `recog.models.detect`):
`model(images, targets)` in training returns the loss dict, `model(images)`
returns per-image `{"boxes", "scores", "labels"}` in input pixels after
NMS.  torchvision's detectors and our YOLO differ inside; this task never
needs to know which it has.  Predictions come back in original-image pixels
(dividing by the letterbox scale), clipped to the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from recog.metrics.base import Accumulator
from recog.names import MetricName, TaskName
from recog.recipe import FineTune, TaskRecipe
from recog.tasks.base import Task, normalization
from recog.tasks.data import DETECT_DATA, TaskData
from recog.tasks.drawing import draw_boxes
from recog.types import Batch, Prediction, Sample, Selection, Target, TaskScores

if TYPE_CHECKING:
    from recog.config import TrainConfig
    from recog.models.registry import ModelSpec


class DetectTask(Task):
    name: ClassVar[TaskName] = TaskName.DETECT
    data: ClassVar[TaskData] = DETECT_DATA
    scores: ClassVar[TaskScores] = TaskScores(
        primary=MetricName.MAP, headline=(MetricName.MAP, MetricName.MAP50),
        labels={"per_class": "AP"},
    )  # fmt: skip
    # yolo_n letterboxed to the images' longer side (320 px cap on CPU), batch 16 and an EMA of
    # the weights: raccoon 0.83 mAP50 where batch 32 without EMA gave 0.28 (docs/recipe.md)
    recipe: ClassVar[TaskRecipe] = TaskRecipe(
        models=((1 << 30, "yolo_n"),),
        size_cap_cpu=320,
        size_cap_gpu=640,
        size_floor=128,
        size_side="long",
        batch_max=16,
        lr=2e-3,
        lr_batch=16,
        weight_decay=5e-4,
        ema=True,
        batch_for_budget=True,
        min_scales={"none": 1.0, "light": 0.75, "standard": 0.5, "strong": 0.5},
        # from the ImageNet backbone (yolo_lite0): its adapters, neck and head (1.8 M of
        # 4.8 M parameters) start fresh and keep the from-scratch rate and budget; the
        # pretrained body trains at a quarter of it; no head-only epoch (the fresh part is a
        # deep network, not one linear layer); the input size from the data, as from scratch
        # (object scale, not the weights' 224 px, is what matters to a detector).  Measured
        # on raccoon: docs/recipe.md, "Fine-tuning".
        finetune=FineTune(
            model="yolo_lite0",
            steps_per_sqrt_image=60.0,
            min_steps=300,
            lr=2e-3,
            lr_batch=16,
            head_epochs=0.0,
            backbone_lr=0.25,
            min_scale=0.5,
            size_floor=128,
            size_from_weights=False,
        ),
    )

    def __init__(
        self,
        class_names: list[str],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        img_size: int,
        display_threshold: float = 0.25,
        max_detections: int = 100,
    ) -> None:
        super().__init__(class_names, mean, std)
        self.img_size = img_size
        self.display_threshold = display_threshold
        self.max_detections = max_detections

    @classmethod
    def from_config(cls, cfg: TrainConfig, class_names: list[str], spec: ModelSpec) -> DetectTask:
        return cls(class_names, *normalization(cfg, spec), img_size=int(cfg.img_size))

    def prepare(
        self, image: torch.Tensor, full_size: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        from recog.data.detect import letterbox

        out, _, scale = letterbox(image, torch.zeros((0, 4)), self.img_size, full_size=full_size)
        return out, {"scale": scale, "orig_size": full_size or tuple(image.shape[-2:])}

    def decode_size(self, width: int, height: int) -> tuple[int, int] | None:
        """The longer side at the letterbox's `img_size`, the aspect kept."""
        scale = self.img_size / max(width, height)
        return math.ceil(width * scale), math.ceil(height * scale)

    def collate(self, samples: Sequence[Sample]) -> Batch:
        images = torch.stack([s.image for s in samples])
        targets = [
            {"boxes": s.target.boxes.float(), "labels": s.target.labels.long()} for s in samples
        ]
        truth = [s.meta.get("truth", s.target) for s in samples]
        meta = [
            {"path": s.path, "orig_size": s.orig_size, "scale": s.meta.get("scale", 1.0)}
            for s in samples
        ]
        return Batch(images, targets, truth, meta)

    def loss(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        return model(self.normalize(batch.images), batch.targets)

    @torch.no_grad()
    def predict(
        self, model: nn.Module, images: torch.Tensor, meta: Sequence[dict[str, Any]] | None = None
    ) -> list[Prediction]:
        outputs = model(self.normalize(images))
        return [
            self._answer(out, meta[i] if meta else {}, images.shape[-2:])
            for i, out in enumerate(outputs)
        ]

    def _answer(
        self, out: dict[str, torch.Tensor], info: dict[str, Any], input_size: Sequence[int]
    ) -> Prediction:
        """One image's prediction from the model's output for it (`info`: its meta)."""
        known = "orig_size" in info and info["orig_size"][0]
        keep, boxes = self._best_boxes(out, info, info["orig_size"] if known else None)
        return Prediction(
            boxes=boxes,
            labels=out["labels"].cpu().long()[keep],
            scores=out["scores"].float().cpu()[keep],
        )

    def _best_boxes(
        self, out: dict[str, torch.Tensor], info: dict[str, Any], clip_to: Sequence[int] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The best `max_detections` of one image's model output (their indices, best first)
        and their boxes in original pixels: divided by the letterbox scale, clipped to
        `clip_to` (h, w) where given."""
        keep = out["scores"].float().cpu().argsort(descending=True)[: self.max_detections]
        boxes = out["boxes"].float().cpu()[keep] / float(info.get("scale", 1.0))
        if clip_to is not None:
            h, w = clip_to
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        return keep, boxes

    def metrics(self) -> Accumulator:
        from recog.metrics.detection import DetectionAccumulator

        return DetectionAccumulator(self.class_names)

    def shown(self, prediction: Prediction) -> torch.Tensor:
        """The boxes drawn and listed: those at or above the threshold the prediction was
        selected at (`select`), else the display threshold (a raw `predict`'s output)."""
        conf = self.display_threshold if prediction.conf is None else prediction.conf
        return prediction.scores >= conf

    def check_selection(self, selection: Selection) -> None:
        """Every option applies to boxes."""

    def select(self, prediction: Prediction, selection: Selection) -> Prediction:
        """Boxes scoring at least `conf` (default the display threshold, 0.25 for a detector,
        0.5 for instances), then class-aware NMS at `iou` (default none beyond the model's
        own: yolo's 0.7, faster_rcnn's 0.5, ssd300's 0.45, ssdlite's 0.55), then the best `max_det` (default
        100).  The model's NMS ran first, so an `iou` above its own suppresses nothing more."""
        from torchvision.ops import batched_nms

        conf = self.display_threshold if selection.conf is None else selection.conf
        max_det = self.max_detections if selection.max_det is None else selection.max_det
        scores = prediction.scores
        keep = (scores >= conf).nonzero().flatten()
        keep = keep[scores[keep].argsort(descending=True)]
        if selection.iou is not None and len(keep):
            kept = batched_nms(prediction.boxes[keep].float(), scores[keep].float(),
                               prediction.labels[keep], selection.iou)  # fmt: skip
            keep = keep[kept]  # batched_nms returns its kept indices best first
        keep = keep[:max_det]
        masks = None if prediction.masks is None else prediction.masks[keep]
        return replace(prediction, boxes=prediction.boxes[keep], labels=prediction.labels[keep],
                       scores=scores[keep], masks=masks, conf=conf)  # fmt: skip

    def draw(
        self, image: torch.Tensor, prediction: Prediction, target: Target | None = None
    ) -> torch.Tensor:
        """Shown boxes in their class's colour with `name score` labels (truth: thin white)."""
        keep = self.shown(prediction)
        labels = [
            f"{self.class_names[int(c)]} {float(s):.2f}"
            for c, s in zip(prediction.labels[keep], prediction.scores[keep], strict=True)
        ]
        out = image
        if target is not None and target.boxes is not None and len(target.boxes):
            from torchvision.utils import draw_bounding_boxes

            out = draw_bounding_boxes(out, target.boxes, colors="white", width=1)
        return draw_boxes(out, prediction.boxes[keep], prediction.labels[keep], labels,
                          self.num_classes)  # fmt: skip

    def to_record(self, prediction: Prediction, *, top_k: int = 5) -> dict[str, Any]:
        keep = self.shown(prediction)
        return {
            "detections": [
                {
                    "label": self.class_names[int(c)],
                    "score": round(float(s), 6),
                    "box": [round(float(v), 2) for v in b],
                }
                for b, c, s in zip(
                    prediction.boxes[keep],
                    prediction.labels[keep],
                    prediction.scores[keep],
                    strict=True,
                )
            ]
        }

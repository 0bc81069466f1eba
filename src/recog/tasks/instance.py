"""Instance segmentation behind the Task seam (`InstanceSegmentTask`): detection plus a mask per object.

Mask R-CNN's task, under the task name "segment" like the semantic one
(`recog.tasks.task_class` picks it from `spec.instance`).  Inputs are
letterboxed as for detection; predictions are divided back by the letterbox
scale and each mask is resized to the original pixels and cut at 0.5.  Data
loading is the segment task's (`recog.tasks.segment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torchvision.utils import draw_segmentation_masks

from recog.metrics.base import Accumulator
from recog.names import MetricName, TaskName
from recog.tasks.base import normalization
from recog.tasks.data import SEGMENT_DATA, TaskData
from recog.tasks.detect import DetectTask
from recog.tasks.drawing import palette
from recog.tasks.segment import png_b64
from recog.types import Batch, Prediction, Sample, Target, TaskScores

if TYPE_CHECKING:
    from recog.config import TrainConfig
    from recog.models.registry import ModelSpec


class InstanceSegmentTask(DetectTask):
    """Instance segmentation (Mask R-CNN): detection plus a mask per object."""

    name: ClassVar[TaskName] = TaskName.SEGMENT
    data: ClassVar[TaskData] = SEGMENT_DATA
    scores: ClassVar[TaskScores] = TaskScores(
        primary=MetricName.MASK_MAP,
        headline=(MetricName.MASK_MAP, MetricName.MASK_MAP50, MetricName.MAP, MetricName.MAP50),
        labels={
            "per_class": "mask AP",
            "map": "box mAP@[.5:.95]",
            "map50": "box mAP@0.5",
            "map75": "box mAP@0.75",
        },
    )
    mask_threshold: ClassVar[float] = 0.5

    @classmethod
    def from_config(
        cls, cfg: TrainConfig, class_names: list[str], spec: ModelSpec
    ) -> InstanceSegmentTask:
        img_size = int(cfg.img_size)
        # Mask R-CNN scores each class of a box separately, so one object also comes
        # back as other classes at low scores; those count for mAP but clutter a picture
        return cls(class_names, *normalization(cfg, spec), img_size=img_size, display_threshold=0.5)

    def collate(self, samples: Sequence[Sample]) -> Batch:
        batch = super().collate(samples)
        for target, s in zip(batch.targets, samples, strict=True):
            target["masks"] = s.target.masks
        return batch

    def _answer(
        self, out: dict[str, torch.Tensor], info: dict[str, Any], input_size: Sequence[int]
    ) -> Prediction:
        """The detections, and each one's mask resized to the original pixels and cut at
        `mask_threshold`."""
        scale = float(info.get("scale", 1.0))
        h, w = info.get("orig_size") or input_size
        keep, boxes = self._best_boxes(out, info, (h, w))
        probs = out["masks"][keep].float()  # (N, 1, size, size) input pixels
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        probs = probs[..., :nh, :nw]
        if len(probs):
            probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
        masks = (
            (probs[:, 0] > self.mask_threshold).cpu()
            if len(probs)
            else torch.zeros((0, h, w), dtype=torch.bool)
        )
        return Prediction(
            boxes=boxes,
            labels=out["labels"][keep].cpu().long(),
            scores=out["scores"][keep].float().cpu(),
            masks=masks,
        )

    def metrics(self) -> Accumulator:
        from recog.metrics.segmentation import InstanceAccumulator

        return InstanceAccumulator(self.class_names)

    def draw(
        self, image: torch.Tensor, prediction: Prediction, target: Target | None = None
    ) -> torch.Tensor:
        keep = self.shown(prediction)
        out = image.cpu()
        if keep.any():
            colours = palette(self.num_classes)
            out = draw_segmentation_masks(
                out,
                prediction.masks[keep],
                alpha=0.5,
                colors=[colours[int(c)] for c in prediction.labels[keep]],
            )
        return super().draw(out, prediction, target)

    def to_record(self, prediction: Prediction, *, top_k: int = 5) -> dict[str, Any]:
        """Detections above the display threshold and one PNG: pixel = 1 + detection index."""
        record = super().to_record(prediction, top_k=top_k)
        keep = self.shown(prediction)
        masks = prediction.masks[keep]
        h, w = prediction.masks.shape[-2:]
        index = torch.zeros((h, w), dtype=torch.int64)
        for j in range(min(len(masks), 254) - 1, -1, -1):  # the best-scored on top
            index[masks[j]] = j + 1
        record["segmentation"] = {"width": int(w), "height": int(h), "mask_png": png_b64(index)}
        return record

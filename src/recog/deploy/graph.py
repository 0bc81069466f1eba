"""What an exported model computes: uint8 pixels in, the model's tensors out, and the step after.

The exported graph carries the run's preprocessing, so the file alone predicts:
its input is `images`, uint8 (B, 3, H, W) RGB at the model's input size (after the
task's own resize or letterbox, which `recog.deploy.backend` does from the file's
metadata), and its first operations are the cast and the run's normalization.

Its outputs are tensors only, named in `ExportParts.outputs`:
- classifiers: `logits` (B, C);
- semantic segmenters: `logits` (B, C, H, W);
- recog's YOLO: `boxes` (B, A, 4) xyxy input pixels and `scores` (B, A, C), decoded
  but before NMS.  NMS is a documented step after the graph (`finish = "nms"`,
  thresholds in the metadata; `recog.models.yolo.select_detections`, the same
  function the torch model runs).  Kept out because class-aware NMS in the graph is a
  per-image loop that the exporter unrolls for the traced batch size, which would cost
  the dynamic batch; docs/export.md has the latency of the step beside the graph's.

- torchvision's R-CNNs: one image's `boxes`, `scores`, `labels` (and Mask R-CNN's
  `masks`), NMS inside; the graph takes a batch of one (`finish = "detections"`).

The cut itself is the model's (`recog.models.export_parts`): torchvision's SSD and
SSDlite cut before NMS as YOLO does; its R-CNNs export whole (`recog.models.detect`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from recog.config import TrainConfig
from recog.models.export_parts import ExportParts
from recog.tasks.base import Task


class TrainedRun(Protocol):
    """What deployment reads of a trained model (`recog.api.Recognizer` is one)."""

    run_dir: Path
    config: TrainConfig
    class_names: list[str]
    model: nn.Module
    task: Task

    @property
    def img_size(self) -> int: ...


class PixelGraph(nn.Module):
    """uint8 pixels -> normalization -> the model's export cut (a tuple of tensors)."""

    def __init__(self, parts: ExportParts, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.inner = parts.module
        scale = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        )
        self.register_buffer("scale", scale)

    def forward(self, images: torch.Tensor) -> Any:
        out = self.inner((images.float() - self.mean) / self.scale)
        return out

"""Untouched ImageNet features: a second network the "none of these" scores may read.

A fine-tuned classifier's own penultimate features keep what tells its classes
apart, and little else: the no-flag hymenoptera run (efficientnet_lite0
fine-tuned, top-1 0.948) gave k-NN AUROC 0.746 against raccoon photos on its
own features, a resnet18 from scratch 0.34 (below chance).  The same k-NN
score on EfficientNet-Lite0's ImageNet features, never fine-tuned, reached
0.992 (`bench/ood_pretrained_features.py`, docs/confidence.md): a thousand
ImageNet classes know what a raccoon is.  So the `imagenet_*` scores read the
pooled features of a pretrained record of `recog.models.pretrained.TABLE`
(the run's own record where it started from one, else EfficientNet-Lite0)
with the weights' own preprocessing, beside the run's model.

`ImageNetFeatures(record)(images)` takes the uint8 (B, 3, H, W) images the
task prepared for the run's model (classification: the shorter side resized
and centre-cropped), resizes them to the record's input size (bicubic,
antialiased, as its `interpolation` says) and normalizes them with its mean
and std.  The network is loaded strictly (checksum, every tensor) once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recog.errors import RecogError
from recog.models import pretrained
from recog.models.pretrained import PretrainedWeights

#: the record used where the run has none of its own: the smallest, a core dependency
DEFAULT_RECORD = "efficientnet_lite0.imagenet"


def record_for(pretrained_block: Mapping[str, Any] | None) -> PretrainedWeights:
    """The run's own ImageNet record (config.yaml's `pretrained` names one of the table's),
    else `DEFAULT_RECORD`; a RecogError line when its package is missing."""
    name = (pretrained_block or {}).get("name")
    record = pretrained.TABLE.get(str(name), pretrained.TABLE[DEFAULT_RECORD])
    record.path()  # the one line saying which package to install
    return record


def available(pretrained_block: Mapping[str, Any] | None = None) -> bool:
    try:
        record_for(pretrained_block)
    except RecogError:
        return False
    return True


class ImageNetFeatures:
    """The pooled (B, D) ImageNet features of `record`'s network, never trained further."""

    def __init__(self, record: PretrainedWeights) -> None:
        import timm

        self.record = record
        self.network: nn.Module = timm.create_model(
            record.timm_arch, pretrained=False, num_classes=0
        )
        pretrained.load_into(self.network, record)
        self.network.eval()
        self.mean = torch.tensor(record.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(record.std).view(1, 3, 1, 1)
        self.dim = int(getattr(self.network, "num_features", 0))

    @property
    def name(self) -> str:
        return self.record.name

    @torch.inference_mode()
    def __call__(self, images: Tensor, *, batch_size: int = 32) -> Tensor:
        """(B, D) float features of uint8 (B, 3, H, W) images, or float ones in [0, 1]."""
        parts = []
        size = self.record.input_size
        scale = 255.0 if images.dtype == torch.uint8 else 1.0
        device = images.device  # beside the run's model: a server on a GPU keeps it there
        if self.mean.device != device:
            self.network.to(device)
            self.mean, self.std = self.mean.to(device), self.std.to(device)
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].float() / scale
            if tuple(x.shape[-2:]) != (size, size):
                x = F.interpolate(
                    x, size=(size, size), mode=self.record.interpolation, antialias=True,
                    align_corners=False,
                ).clamp_(0.0, 1.0)  # fmt: skip
            parts.append(self.network((x - self.mean) / self.std).float().cpu())
        if not parts:
            return torch.zeros(0, self.dim)
        return torch.cat(parts)

"""`cnn`: a convolutional network written from its parts.

This is the textbook CNN the rest of recog is measured against: stages of
[conv 3x3 -> batch-norm -> ReLU] x `convs_per_stage`, then 2x2 max-pooling,
the channel count doubling each stage; optional attention after each stage
(squeeze-and-excitation, Hu et al. 2018, or CBAM, Woo et al. 2018, both
from timm's layers); global average pooling; a fully connected classifier
with dropout.  It is our own code because it *is* the lesson: every part is
visible and named.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from timm.layers.cbam import CbamModule
from timm.layers.squeeze_excite import SEModule
from torch import nn

from recog.errors import RecogError
from recog.models.registry import Range, register_model
from recog.types import TaskName


class ConvBlock(nn.Sequential):
    """conv 3x3 (no bias: batch-norm has one) -> batch-norm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SimpleCNN(nn.Module):
    """Stages of conv blocks and max-pooling, global pooling, a linear head.

    Input (B, 3, H, W) float; output (B, num_classes) logits.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        width: int = 32,
        depth: int = 3,
        convs_per_stage: int = 2,
        attention: Literal["none", "se", "cbam"] = "none",
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        channels = 3
        for i in range(depth):
            out = width * 2**i
            blocks: list[nn.Module] = [
                ConvBlock(channels if j == 0 else out, out) for j in range(convs_per_stage)
            ]
            if attention == "se":
                blocks.append(SEModule(out))
            elif attention == "cbam":
                blocks.append(CbamModule(out))
            blocks.append(nn.MaxPool2d(2))
            stages.append(nn.Sequential(*blocks))
            channels = out
        self.features = nn.Sequential(*stages)
        self.num_features = channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes)
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


#: the widest stage `cnn` builds: VGG's widest is 512; at 2048 one 3x3 conv already holds
#: 38 million weights, far beyond what this teaching network is for
WIDEST = 2048


@register_model("cnn", task=TaskName.CLASSIFY, default_img_size=64, min_img_size=16, head=("head",))
def cnn(
    *,
    num_classes: int,
    img_size: int,
    width: Annotated[int, Range(1, 512)] = 32,
    depth: Annotated[int, Range(1, 8)] = 3,
    convs_per_stage: Annotated[int, Range(1, 8)] = 2,
    attention: Literal["none", "se", "cbam"] = "none",
    dropout: Annotated[float, Range(0, 0.9)] = 0.2,  # at 1 the head would see only zeros
) -> SimpleCNN:
    """CNN from its parts: conv/batch-norm/ReLU blocks, max-pooling, global pooling, FC head."""
    if img_size < 2**depth:
        raise RecogError(f"model cnn: depth {depth} halves {img_size} px below 1 px (--img-size)")
    if width * 2 ** (depth - 1) > WIDEST:
        raise RecogError(
            f"model cnn: width {width} doubled over depth {depth} is "
            f"{width * 2 ** (depth - 1)} channels, above {WIDEST}"
        )
    return SimpleCNN(
        num_classes=num_classes,
        width=int(width),
        depth=int(depth),
        convs_per_stage=int(convs_per_stage),
        attention=attention,
        dropout=float(dropout),
    )

"""`yolo_lite0`: recog's YOLO (`recog.models.yolo`) on the ImageNet-pretrained EfficientNet-Lite0.

The backbone is timm's `tf_efficientnet_lite0` as a feature extractor
(`features_only=True`, `out_indices=(2, 3, 4)`: the ends of its stages at
strides 8, 16 and 32, 40 / 112 / 320 channels), whose weights ship in a pip
package (`recog.models.pretrained`, record `efficientnet_lite0.imagenet`),
so a detector starts from ImageNet features with nothing downloaded.  The
neck (PAN), the decoupled anchor-free head, the assigner and loss, the
decoding, NMS and the export cut are yolo_n's, unchanged: the model is a
`YOLO` with another backbone, so `recog export`, the explainers and every
task path that knows a recog YOLO take it as they take yolo_n (distillation
too, though not between yolo_lite0 and yolo_n: their inputs are normalized
differently, which `recog.distill` refuses).

Between the two, one 1x1 Conv-BN-SiLU per level maps 40 / 112 / 320 channels
to yolo_n's 64 / 128 / 256.  PAN would run on Lite0's widths as they are;
the adapters are there so that (1) the neck and head are yolo_n's, layer for
layer, and a comparison of the two measures the backbone and its
pretraining, not another neck; (2) the head's widths follow the P3 width
(`DecoupledHead`), and 40 would make its class branch narrower than yolo_n's
(64) on the level that finds the small objects; (3) Lite0's stage ends are
the linear projections of inverted-residual blocks (no activation, the scale
ImageNet's next block wanted), and the adapters hand the neck normalized,
activated maps as CSPDarknet's C2f blocks do.  They cost 0.1 M parameters.

The adapters are fresh layers, so they belong with the neck and head in
`ModelSpec.head` (`backbone.adapt`, `neck`, `head`): fine-tuning's optimizer
(`build_optimizer(..., head=spec.head)`) treats the pretrained network alone
(`backbone.body`, `ModelSpec.pretrained_at`) as the body.

Our own code, because no library ships this pairing: timm gives the
backbone and no detector, torchvision's detectors are SSD and R-CNN designs
(not an anchor-free single-stage head), and the peer YOLOs (Ultralytics) are
AGPL frameworks.  What is new here is a backbone wrapper and a
builder; the detector is `recog.models.yolo`'s.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from recog.models.registry import register_model
from recog.models.yolo import TRAIN_DEFAULTS, YOLO, Conv, scale
from recog.types import TaskName

#: yolo_n's width and depth multiples: its neck and head, and the adapters' widths
WIDTH, DEPTH = 0.25, 0.33


class PretrainedBackbone(nn.Module):
    """A timm network's stride 8/16/32 maps, adapted to `out_channels`: `Backbone`'s contract."""

    def __init__(self, arch: str, out_channels: tuple[int, int, int]) -> None:
        super().__init__()
        self.body = timm.create_model(
            arch, pretrained=False, features_only=True, out_indices=(2, 3, 4)
        )
        assert tuple(self.body.feature_info.reduction()) == (8, 16, 32), arch
        self.adapt = nn.ModuleList(
            Conv(c_in, c_out, 1)
            for c_in, c_out in zip(self.body.feature_info.channels(), out_channels, strict=True)
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [a(f) for a, f in zip(self.adapt, self.body(x), strict=True)]


def _build(*, num_classes: int, img_size: int) -> YOLO:
    widths, _ = scale(WIDTH, DEPTH)
    backbone = PretrainedBackbone("tf_efficientnet_lite0", (widths[2], widths[3], widths[4]))
    return YOLO(
        num_classes=num_classes, width=WIDTH, depth=DEPTH, img_size=img_size, backbone=backbone
    )


register_model(
    "yolo_lite0",
    task=TaskName.DETECT,
    default_img_size=320,
    min_img_size=64,
    head=("backbone.adapt", "neck", "head"),
    encoder="backbone.body",
    # the TensorFlow release's preprocessing, as the pretrained record says
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    description="recog YOLO (yolo_n's neck and head) on ImageNet EfficientNet-Lite0 features",
    # yolo_n's mosaic, not its lr and weight decay: a model's own settings come before the
    # recipe's (recog.recipe.resolve), so they would shadow the detection recipe's rate for
    # fine-tuning; from scratch the recipe's are yolo_n's (2e-3 at batch 16, 5e-4)
    train_defaults={"mosaic": TRAIN_DEFAULTS["mosaic"]},
    pretrained="efficientnet_lite0.imagenet",
    pretrained_at="backbone.body",
)(_build)

"""Segmentation models behind recog's two segmentation contracts.

Semantic (`fcn`, `fcn_resnet18`, `unet`, `unet_lite0`, `deeplabv3`): `model(x) -> logits`
with x (B, 3, H, W) normalized float and logits (B, C, H, W) at the input
resolution.  `SemanticSegmenter` pads any input to the network's stride
(U-Net needs H and W divisible by 32) and crops the logits back, so every
model takes any size.

Instance (`mask_rcnn`): the detection contract of `recog.models.detect` plus
masks: `model(images, targets)` with targets {"boxes" (N, 4) xyxy, "labels"
(N,) in 0..C-1, "masks" (N, H, W) uint8} returns the loss dict;
`model(images)` returns per image {"boxes", "scores", "labels", "masks"
(N, 1, H, W) float probabilities}, all in input pixels.

U-Net comes from segmentation_models_pytorch (any of its encoders, e.g.
resnet18/34, mobilenet_v2, efficientnet-b0, or a timm one as `tu-<name>`),
always with `encoder_weights=None`: nothing is downloaded; `--weights` loads a
local encoder file instead, or `--weights smp` the file smp would have downloaded
if it is in the local Hugging Face cache (`recog.models.weights`, `recog.models.cached`).
`unet_lite0` is that U-Net on EfficientNet-Lite0, whose ImageNet encoder weights
ship in a pip package (`--weights imagenet`, `recog.models.pretrained`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
import torchvision.models.detection as tvd
from torch import nn

from recog.models.detect import TorchvisionDetector
from recog.models.registry import Range, register_model
from recog.types import TaskName


class SemanticSegmenter(nn.Module):
    """Wraps a segmentation network: pads to `stride`, returns (B, C, H, W) logits."""

    def __init__(self, model: nn.Module, *, stride: int = 32) -> None:
        super().__init__()
        self.model = model
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        # zeros: the mean colour after normalization; padded unconditionally (a no-op at a
        # multiple of the stride) so that an exported graph keeps the padding for any size
        x = F.pad(x, (0, pw, 0, ph))
        out = self.model(x)
        if isinstance(out, dict):  # torchvision's FCN / DeepLabV3 return {"out", "aux"}
            out = out["out"]
        return out[..., :h, :w]


class _TimmFCN(nn.Module):
    """FCN (Long et al. 2015) head on a dilated timm backbone: torchvision has no
    ResNet-18 FCN and its BasicBlock refuses dilation, timm's does not."""

    def __init__(self, backbone: str, num_classes: int, output_stride: int) -> None:
        super().__init__()
        import timm
        from torchvision.models.segmentation.fcn import FCNHead

        self.backbone = timm.create_model(
            backbone,
            pretrained=False,
            features_only=True,
            out_indices=(4,),
            output_stride=output_stride,
        )
        self.classifier = FCNHead(self.backbone.feature_info.channels()[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)[-1]
        return F.interpolate(
            self.classifier(features), size=x.shape[-2:], mode="bilinear", align_corners=False
        )


_SEMANTIC: dict[str, Any] = {"task": TaskName.SEGMENT, "min_img_size": 32}


class _StaticSameConv2d(nn.Conv2d):
    """timm's `Conv2dSame` (TensorFlow's 'same' padding, in its `tf_` models) with the padding
    fixed: for sides that are multiples of the stride it is `(k - 1) * d + 1 - s` whatever the
    side, the same numbers timm computes at every call.  `SemanticSegmenter` pads its input to
    32, so no stride-2 convolution of a U-Net encoder sees an odd side.  timm's per-call
    padding is symbolic in the exported graph's height and width, and the ONNX exporter did
    not finish unet_lite0 in 5 minutes (sympy in torch.export's value ranges); fixed, 21 s."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            0,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        self.load_state_dict(conv.state_dict())
        ph, pw = (
            max((k - 1) * d + 1 - s, 0)
            for k, s, d in zip(self.kernel_size, self.stride, self.dilation, strict=True)
        )
        self.same = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(F.pad(x, self.same), self.weight, self.bias)


def _static_same_padding(encoder: nn.Module) -> None:
    """Every timm `Conv2dSame` of `encoder` replaced by `_StaticSameConv2d` (same tensors,
    same names)."""
    from timm.layers import Conv2dSame

    for name, module in list(encoder.named_modules()):
        if isinstance(module, Conv2dSame):
            encoder.set_submodule(name, _StaticSameConv2d(module))


@register_model(
    "unet",
    default_img_size=256,
    head=("model.segmentation_head",),
    encoder="model.encoder",
    # `--weights smp`: smp's ImageNet file of the `encoder` argument (timm's for `tu-` ones)
    library_weights={"smp": "resnet18"},
    library_arg="encoder",
    description="U-Net (segmentation_models_pytorch), encoder=resnet18 by default",
    # its lr 2e-3 held at batch 8 (membrane, 0.786 mIoU) and 16 (shapes, 0.91): used as is
    train_defaults={"lr": 2e-3, "weight_decay": 1e-4},
    task=TaskName.SEGMENT,
    min_img_size=64,  # below, the 32x-downsampled bottom is 1x1 and batch-norm needs a batch
)
def unet(
    *,
    num_classes: int,
    img_size: int,
    encoder: str = "resnet18",
    decoder_channels: Sequence[int] | str = (128, 64, 32, 16, 16),
) -> SemanticSegmenter:
    """U-Net with skip connections from every encoder stage (Ronneberger et al. 2015).

    segmentation_models_pytorch serves: it has the U-Net decoder over a common
    encoder contract (`out_channels` per stage), so only the encoder name changes.
    The decoder is half as wide as smp's default (256, ..., 16): measured here on
    2 CPU cores at 128 px it trains 2.5x faster for the same shapes mIoU.
    """
    import segmentation_models_pytorch as smp

    if isinstance(decoder_channels, str):
        decoder_channels = [int(c) for c in decoder_channels.split(",")]
    net = smp.Unet(
        encoder_name=encoder,
        encoder_weights=None,
        decoder_channels=tuple(decoder_channels),
        classes=num_classes,
    )
    _static_same_padding(net.encoder)  # timm's `tf_` encoders (`tu-tf_...`): exportable
    return SemanticSegmenter(net)


# EfficientNet-Lite0 (Tan & Le 2019; timm's `tf_efficientnet_lite0`, 'same' padding) as the
# encoder, through smp's timm-universal encoder: its ImageNet weights ship in a pip package
# (recog.models.pretrained), so `--weights imagenet` starts the encoder pretrained with no
# download; the decoder and the segmentation head start fresh.  `pretrained_at` is the timm
# features network inside smp's encoder (its names are timm's own: conv_stem, bn1, blocks.S.I).
_LITE0_AT = "model.encoder.model"


@register_model(
    "unet_lite0",
    default_img_size=256,
    # the decoder and the segmentation head are new: fine-tuning's head, the encoder its body
    head=("model.decoder", "model.segmentation_head"),
    encoder=_LITE0_AT,
    library_weights={"timm": "tf_efficientnet_lite0"},
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    pretrained="efficientnet_lite0.imagenet",
    pretrained_at=_LITE0_AT,
    description="U-Net (segmentation_models_pytorch) on EfficientNet-Lite0; ImageNet encoder from pip",
    task=TaskName.SEGMENT,
    min_img_size=64,  # as unet: below, the 32x-downsampled bottom is 1x1
)
def unet_lite0(
    *,
    num_classes: int,
    img_size: int,
    decoder_channels: Sequence[int] | str = (128, 64, 32, 16, 16),
) -> SemanticSegmenter:
    """`unet` with encoder `tu-tf_efficientnet_lite0` (stride 32, stages of 16, 24, 40,
    112 and 320 channels) and the same half-width decoder."""
    return unet(
        num_classes=num_classes,
        img_size=img_size,
        encoder="tu-tf_efficientnet_lite0",
        decoder_channels=decoder_channels,
    )


def _register_torchvision(
    name: str,
    torchvision_name: str,
    *,
    stride: int,
    description: str,
    train_defaults: dict[str, Any],
) -> None:
    """Registers torchvision's semantic segmenter `torchvision_name` (FCN, DeepLabV3: the
    same head and backbone names, no auxiliary head) as `name`, padded to `stride`."""

    @register_model(
        name,
        library_weights={"torchvision": torchvision_name},
        default_img_size=256,
        head=("model.classifier.4",),
        encoder="model.backbone",
        description=description,
        train_defaults=train_defaults,
        **_SEMANTIC,
    )
    def build(*, num_classes: int, img_size: int) -> SemanticSegmenter:
        from torchvision.models import segmentation

        network = getattr(segmentation, torchvision_name)
        return SemanticSegmenter(
            network(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False),
            stride=stride,
        )


_register_torchvision(
    "fcn", "fcn_resnet50", stride=8, description="torchvision FCN ResNet-50",
    train_defaults={"lr": 1e-3, "weight_decay": 1e-4},
)  # fmt: skip


@register_model(
    "fcn_resnet18",
    default_img_size=256,
    head=("model.classifier.4",),
    encoder="model.backbone",
    description="FCN head on a dilated ResNet-18 (timm), output stride 16",
    library_weights={"timm": "resnet18"},
    train_defaults={"lr": 2e-3, "weight_decay": 1e-4},
    **_SEMANTIC,
)
def fcn_resnet18(
    *, num_classes: int, img_size: int, output_stride: Literal[8, 16, 32] = 16
) -> SemanticSegmenter:
    return SemanticSegmenter(_TimmFCN("resnet18", num_classes, output_stride), stride=32)


_register_torchvision(
    "deeplabv3", "deeplabv3_mobilenet_v3_large", stride=32,
    description="torchvision DeepLabV3 MobileNetV3-Large",
    # from scratch it predicts only background for 3 epochs, then learns: shapes mIoU
    # 0.71 after 12 epochs of batch 16 (9 minutes on 2 CPU cores)
    train_defaults={"lr": 2e-3, "weight_decay": 1e-4, "epochs": 12, "batch_size": 16},
)  # fmt: skip


# ------------------------------------------------------------------ instances
class InstanceSegmenter(TorchvisionDetector):
    """torchvision Mask R-CNN: the detector contract, with `masks` (N, H, W) in targets and outputs."""

    answer_keys: tuple[str, ...] = ("boxes", "scores", "labels", "masks")

    def torchvision_target(self, target: dict[str, torch.Tensor], device: torch.device) -> dict:
        return {
            **super().torchvision_target(target, device),
            "masks": target["masks"].to(device, torch.uint8),
        }


@register_model(
    "mask_rcnn",
    library_weights={"torchvision": "maskrcnn_resnet50_fpn_v2"},
    default_img_size=512,
    head=("model.roi_heads.box_predictor", "model.roi_heads.mask_predictor.mask_fcn_logits"),
    encoder="model.backbone.body",
    description="torchvision Mask R-CNN ResNet-50 FPN v2 (instances)",
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    instance=True,
    # batch 4 learns faster per image than 8 (shapes:400, 3 epochs: mask mAP50 0.15 vs 0.05);
    # bf16 autocast where the CPU has it: 1.5x a step on AVX512-BF16 (2 cores, 128 px)
    train_defaults={
        "lr": 5e-4,
        "weight_decay": 1e-4,
        "clip_grad": 10.0,
        "epochs": 10,
        "batch_size": 4,
        "amp": "on",
    },
    task=TaskName.SEGMENT,
    min_img_size=64,
)
def mask_rcnn(
    *, num_classes: int, img_size: int, rois_per_image: Annotated[int, Range(1, 512)] = 32
) -> InstanceSegmenter:
    """Anchors scale with the input size (torchvision's 32..512 px are for 800 px images).

    `rois_per_image` RoIs are sampled per training image for the box and mask heads
    (torchvision: 512).  The v2 heads (four 256-channel convolutions each) cost CPU time
    per RoI; measured on 2 cores at 128 px, batch 8: 2.35 s a step at 64, 1.5 s at 32.
    """
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes = tuple((max(4, round(s * img_size / 512)),) for s in (32, 64, 128, 256, 512))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    model = tvd.maskrcnn_resnet50_fpn_v2(
        weights=None,
        weights_backbone=None,
        num_classes=num_classes + 1,
        min_size=img_size,
        max_size=img_size,
        box_score_thresh=0.05,
        box_detections_per_img=100,
        # torchvision's proposal and RoI counts are sized for 800 px COCO images with dozens
        # of objects; scenes of a few objects need far fewer, and the v2 box and mask heads
        # (four 256-channel convolutions each) cost CPU time per RoI
        rpn_pre_nms_top_n_train=1000,
        rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=500,
        rpn_post_nms_top_n_test=100,
        box_batch_size_per_image=rois_per_image,
    )
    model.rpn.anchor_generator = anchors  # same 3 anchors per place: the RPN head fits
    return InstanceSegmenter(model)

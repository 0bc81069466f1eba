"""torchvision detectors (SSD, SSDlite, Faster R-CNN) behind recog's detection contract.

The contract every detection model answers (our YOLO natively):
`model(images, targets)` -> loss dict with `loss`; `model(images)` ->
per-image {"boxes" (N, 4) xyxy input pixels, "scores" (N,), "labels" (N,)}.
images: (B, 3, H, W) float in [0, 1]; targets: per image {"boxes", "labels"}
with labels in 0..C-1.  torchvision reserves label 0 for background, so the
wrapper shifts labels by one each way; its models normalize and resize
internally, so recog feeds them [0, 1] pixels (mean 0, std 1).

`--weights` takes a whole torchvision detector checkpoint (the class head is
replaced for new classes) or backbone-only ImageNet weights: a ResNet-50 for
`faster_rcnn`, a MobileNetV3-Large for `faster_rcnn_mobilenet`, a VGG16 for
`ssd300`.  SSDlite built without weights uses MobileNetV3's reduced tail, so
only SSDlite checkpoints, not ImageNet MobileNets, fit it.

Export (`recog export`): SSD and SSDlite cut as recog's YOLO does, at decoded
boxes and class scores before NMS (`_SSDDecoded`: torchvision's own normalize,
resize, backbone, head, anchors, box decoding and clipping, the soft-max without
background, boxes mapped back to the input), then `select_detections` with the
model's thresholds and its per-class candidate count times the classes (for one
class the same candidates as torchvision's per-class top-k).

Faster R-CNN and Mask R-CNN export whole, NMS and all (`_RCNNOneImage`, finish
"detections"): their second stage crops region features from the proposals the
first stage's NMS kept, a step whose sizes depend on the data.  torch.export (the
dynamo exporter) fails on torchvision's R-CNNs at its first step (torch 2.14.1,
strict and non-strict, measured); torch.onnx's TorchScript-based exporter, the one
torchvision's own ONNX tests use for these models, traces them with their
tracing-aware code paths and writes ONNX's NonMaxSuppression and RoiAlign.  It
traces one image, so the file takes a batch of one and the runtime runs a batch
image by image (`recog.deploy.backend.ExportedModel`); the second stage is per
image in torchvision too.
"""

from __future__ import annotations

from typing import Any

import torch
import torchvision.models.detection as tvd
from torch import nn

from recog.models.export_parts import ExportParts
from recog.models.registry import register_model
from recog.types import TaskName


class TorchvisionDetector(nn.Module):
    """A torchvision detector answering recog's contract (labels shifted past background 0)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def torchvision_target(self, target: dict[str, torch.Tensor], device: torch.device) -> dict:
        """One recog target as torchvision wants it, on the images' device (collated targets
        are dicts, which `Batch.to` leaves where they are)."""
        return {
            "boxes": target["boxes"].to(device, torch.float32),
            "labels": target["labels"].to(device, torch.int64) + 1,
        }

    def forward(
        self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None
    ) -> Any:
        batch = list(images)
        if targets is not None:
            losses = self.model(batch, [self.torchvision_target(t, images.device) for t in targets])
            return {
                "loss": sum(losses.values()),
                **{k.removeprefix("loss_"): v.detach() for k, v in losses.items()},
            }
        was_training = self.model.training
        self.model.eval()
        outputs = self.model(batch)
        self.model.train(was_training)
        return [{**o, "labels": o["labels"] - 1} for o in outputs]

    #: the per-image answer's keys, in the exported graph's output order
    answer_keys: tuple[str, ...] = ("boxes", "scores", "labels")

    def export_parts(self) -> ExportParts:
        """Faster R-CNN (and Mask R-CNN): the whole model for one image (module docstring)."""
        return ExportParts(
            module=_RCNNOneImage(self.model, self.answer_keys),
            outputs=self.answer_keys,
            finish="detections",
            finish_args={"padding_rows": PADDING_ROWS},
            exporter="torchscript",
            per_image=True,
        )


#: rows after an R-CNN graph's detections (label -1), which the runtime drops
#: (`recog.deploy.backend.ExportedModel`; why: `_RCNNOneImage.forward`)
PADDING_ROWS = 1


class _RCNNOneImage(nn.Module):
    """A torchvision R-CNN's eval forward for a batch of one: [0, 1] images (1, 3, H, W) ->
    that image's `keys` (boxes xyxy input pixels, scores, recog's labels, masks)."""

    def __init__(self, model: nn.Module, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.keys = model, keys

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # torchvision's GeneralizedRCNN.forward in eval, with one zero-size proposal added:
        # an image whose first stage keeps no proposal (a weak model does) would reach the
        # second stage's `reshape(-1, 4)` with no rows, which onnxruntime cannot size
        # ("input_shape_size % size", measured), where torch answers "no detections".  The
        # added box decodes to zero width and height, so the second stage's small-box filter
        # drops it before scores and NMS: the detections are torch's, box for box.
        m = self.model
        size = [(int(images.shape[-2]), int(images.shape[-1]))]
        batch, _ = m.transform([images[0]])
        features = m.backbone(batch.tensors)
        proposals, _ = m.rpn(batch, features)
        proposals = [torch.cat([proposals[0], proposals[0].new_zeros(1, 4)])]
        found, _ = m.roi_heads(features, proposals, batch.image_sizes)
        answer = m.transform.postprocess(found, batch.image_sizes, size)[0]
        answer["labels"] = answer["labels"] - 1  # past torchvision's background 0
        # one padding row, label -1, ends every output (`PADDING_ROWS`): no output is empty,
        # which OpenVINO (2026.4) answered with a stale row of the image before (measured:
        # label -1, the previous image's best score); the runtime drops rows of label -1
        pad = {
            "boxes": images.new_zeros(1, 4),
            "scores": images.new_zeros(1),
            "labels": torch.full((1,), -1, dtype=answer["labels"].dtype),
            "masks": images.new_zeros(1, 1, *images.shape[-2:]),
        }
        return tuple(torch.cat([answer[k], pad[k].to(answer[k].dtype)]) for k in self.keys)


class TorchvisionSSD(TorchvisionDetector):
    """SSD and SSDlite: exportable up to NMS (the module docstring)."""

    def export_parts(self) -> ExportParts:
        ssd = self.model
        return ExportParts(
            module=_SSDDecoded(ssd),
            outputs=("boxes", "scores"),
            finish="nms",
            finish_args={
                "score_threshold": float(ssd.score_thresh),
                "iou_threshold": float(ssd.nms_thresh),
                "pre_nms": int(ssd.topk_candidates)
                * (int(ssd.head.classification_head.num_columns) - 1),
                "max_detections": int(ssd.detections_per_img),
            },
        )


class _SSDDecoded(nn.Module):
    """torchvision SSD's eval forward up to NMS, for a batch of one size:
    [0, 1] images (B, 3, H, W) -> boxes (B, A, 4) xyxy input pixels, scores (B, A, C)."""

    def __init__(self, ssd: nn.Module) -> None:
        super().__init__()
        self.ssd = ssd

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.models.detection.image_list import ImageList

        ssd, (h, w) = self.ssd, images.shape[-2:]
        tf = ssd.transform
        mean = torch.tensor(tf.image_mean, dtype=images.dtype, device=images.device)
        std = torch.tensor(tf.image_std, dtype=images.dtype, device=images.device)
        x = (images - mean[:, None, None]) / std[:, None, None]
        fh, fw = tf.fixed_size  # torchvision's resize for SSD: bilinear to the fixed size
        if (h, w) != (fh, fw):
            x = nn.functional.interpolate(x, size=(fh, fw), mode="bilinear", align_corners=False)
        features = ssd.backbone(x)
        features = list(features.values()) if isinstance(features, dict) else [features]
        head = ssd.head(features)
        anchors = ssd.anchor_generator(ImageList(x[:1], [(fh, fw)]), features)[0]
        b, a = head["bbox_regression"].shape[:2]
        boxes = ssd.box_coder.decode_single(
            head["bbox_regression"].reshape(-1, 4), anchors.repeat(b, 1)
        ).reshape(b, a, 4)
        boxes = torch.stack(
            [boxes[..., 0].clamp(0, fw), boxes[..., 1].clamp(0, fh),
             boxes[..., 2].clamp(0, fw), boxes[..., 3].clamp(0, fh)], -1,
        )  # fmt: skip
        scale = torch.tensor(
            [w / fw, h / fh, w / fw, h / fh], dtype=boxes.dtype, device=boxes.device
        )
        scores = head["cls_logits"].softmax(-1)[..., 1:]
        return boxes * scale, scores


_COMMON: dict[str, Any] = {"weights": None, "weights_backbone": None}
#: the same score threshold and detection count under each family's keyword names; the
#: R-CNNs also resize to the run's image size (an SSD's input size is fixed by its anchors)
_SSD: dict[str, Any] = {"score_thresh": 0.001, "detections_per_img": 300}
_EVAL: dict[str, Any] = {"box_score_thresh": 0.001, "box_detections_per_img": 300}
_DETECT = {
    "task": TaskName.DETECT,
    "mean": (0.0, 0.0, 0.0),
    "std": (1.0, 1.0, 1.0),
    "min_img_size": 64,
}


def _register_torchvision(
    name: str, torchvision_name: str, default_img_size: int, description: str
) -> None:
    """Registers torchvision's detector `torchvision_name` as `name`: one builder for the
    four, the SSDs' head and settings or the R-CNNs' by the wrapper they need."""
    ssd = torchvision_name.startswith("ssd")
    wrap = TorchvisionSSD if ssd else TorchvisionDetector

    @register_model(
        name,
        library_weights={"torchvision": torchvision_name},
        default_img_size=default_img_size,
        head=("model.head.classification_head",) if ssd else ("model.roi_heads.box_predictor",),
        description=description,
        encoder="model.backbone.features" if ssd else "model.backbone.body",
        **_DETECT,
    )
    def build(*, num_classes: int, img_size: int) -> TorchvisionDetector:
        sized = _SSD if ssd else {"min_size": img_size, "max_size": img_size, **_EVAL}
        network = getattr(tvd, torchvision_name)
        return wrap(network(num_classes=num_classes + 1, **sized, **_COMMON))


for _row in (
    ("ssdlite", "ssdlite320_mobilenet_v3_large", 320, "torchvision SSDlite320 MobileNetV3-Large"),
    ("ssd300", "ssd300_vgg16", 300, "torchvision SSD300 VGG16"),
    ("faster_rcnn", "fasterrcnn_resnet50_fpn_v2", 512, "torchvision Faster R-CNN ResNet-50 FPN v2"),
    (
        "faster_rcnn_mobilenet",
        "fasterrcnn_mobilenet_v3_large_fpn",
        320,
        "torchvision Faster R-CNN MobileNetV3-Large FPN",
    ),
):
    _register_torchvision(*_row)

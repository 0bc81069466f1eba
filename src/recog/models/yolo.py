"""`yolo_n`, `yolo_s`: our single-stage, anchor-free YOLO detector (one job: backbone, neck, head, assigner, loss and export cut of one model, kept together because each reads the others' shapes).

The design follows YOLOv8 (Ultralytics, 2023), the current reference point
of the family, because each of its parts is a published, measured
improvement over anchor-based YOLOs and all of it fits in one small file:

- backbone: CSPDarknet with C2f blocks (cross-stage partial connections,
  Wang et al. 2020) and SPPF pooling; width/depth multipliers give n and s;
- neck: FPN top-down + PAN bottom-up fusion of strides 8, 16, 32;
- head: decoupled box and class branches per level, anchor-free (one point
  per cell), boxes as Distribution Focal Loss bins (Li et al., GFL 2020);
- assignment: task-aligned assigner (TOOD, Feng et al. 2021): a point is a
  positive for a box when it lies inside it and ranks in the top-k of
  score^alpha * IoU^beta;
- losses: BCE on IoU-aware soft class targets, CIoU box loss (Zheng et al.
  2020) and DFL, weighted 0.5 / 7.5 / 1.5.

Written here because neither torchvision nor timm ships a YOLO, and the
peer (Ultralytics) is AGPL and a framework, not a library we can depend on.

Shapes: images (B, 3, H, W) float in [0, 1].  `forward(images, targets)`
returns the loss dict; `forward(images)` returns per image
{"boxes": (N, 4) xyxy input pixels, "scores": (N,), "labels": (N,)} after
class-aware NMS (the detection model contract of `recog.models.detect`).
`forward_maps` gives the raw per-level maps (B, 4 * reg_max + C, H_l, W_l)
and `decode` turns them into (B, A, 4) boxes and (B, A, C) probabilities.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou, complete_box_iou_loss

from recog.models.export_parts import ExportParts
from recog.models.registry import Range, register_model
from recog.types import TaskName

REG_MAX = 16
STRIDES = (8, 16, 32)


class Conv(nn.Sequential):
    """Conv2d -> BatchNorm -> SiLU, 'same' padding."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03),
            nn.SiLU(inplace=True),
        )


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1, self.cv2 = Conv(c, c, 3), Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block: split, n bottlenecks on one half keeping every intermediate, fuse."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        self.c = c_out // 2
        self.cv1 = Conv(c_in, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c_out, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max-pools, concatenated."""

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        c = c_in // 2
        self.cv1, self.cv2 = Conv(c_in, c, 1), Conv(c * 4, c_out, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Backbone(nn.Module):
    """CSPDarknet: returns the stride 8, 16 and 32 feature maps."""

    def __init__(self, widths: tuple[int, ...], depths: tuple[int, ...]) -> None:
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.stem = nn.Sequential(
            Conv(3, w0, 3, 2), Conv(w0, w1, 3, 2), C2f(w1, w1, depths[0], True)
        )
        self.p3 = nn.Sequential(Conv(w1, w2, 3, 2), C2f(w2, w2, depths[1], True))
        self.p4 = nn.Sequential(Conv(w2, w3, 3, 2), C2f(w3, w3, depths[1], True))
        self.p5 = nn.Sequential(Conv(w3, w4, 3, 2), C2f(w4, w4, depths[0], True), SPPF(w4, w4))
        self.out_channels = (w2, w3, w4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        return [p3, p4, self.p5(p4)]


class PAN(nn.Module):
    """FPN top-down then PAN bottom-up fusion; keeps the three strides."""

    def __init__(self, channels: tuple[int, int, int], depth: int) -> None:
        super().__init__()
        c3, c4, c5 = channels
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.td4 = C2f(c5 + c4, c4, depth)
        self.td3 = C2f(c4 + c3, c3, depth)
        self.down3 = Conv(c3, c3, 3, 2)
        self.bu4 = C2f(c3 + c4, c4, depth)
        self.down4 = Conv(c4, c4, 3, 2)
        self.bu5 = C2f(c4 + c5, c5, depth)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = feats
        t4 = self.td4(torch.cat([self.up(p5), p4], 1))
        n3 = self.td3(torch.cat([self.up(t4), p3], 1))
        n4 = self.bu4(torch.cat([self.down3(n3), t4], 1))
        n5 = self.bu5(torch.cat([self.down4(n4), p5], 1))
        return [n3, n4, n5]


class DecoupledHead(nn.Module):
    """Separate box (DFL bins) and class branches for each level."""

    def __init__(self, channels: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        c_box = max(16, channels[0] // 4, 4 * REG_MAX)
        c_cls = max(channels[0], min(num_classes, 100))
        self.num_classes = num_classes
        self.box = nn.ModuleList(
            nn.Sequential(
                Conv(c, c_box, 3), Conv(c_box, c_box, 3), nn.Conv2d(c_box, 4 * REG_MAX, 1)
            )
            for c in channels
        )
        self.cls = nn.ModuleList(
            nn.Sequential(
                Conv(c, c_cls, 3), Conv(c_cls, c_cls, 3), nn.Conv2d(c_cls, num_classes, 1)
            )
            for c in channels
        )

    def init_bias(self, img_size: int) -> None:
        # Prior: ~5 objects per 640 px image, spread over the cells of each level (YOLOv5's init).
        for box, cls, stride in zip(self.box, self.cls, STRIDES, strict=True):
            box[-1].bias.data.fill_(1.0)
            cls[-1].bias.data.fill_(math.log(5 / self.num_classes / (640 / stride) ** 2))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [
            torch.cat([b(x), c(x)], 1) for x, b, c in zip(feats, self.box, self.cls, strict=True)
        ]


def make_points(
    shapes: list[tuple[int, int]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres (A, 2) in input pixels and their strides (A, 1), level by level."""
    points, strides = [], []
    for (h, w), s in zip(shapes, STRIDES, strict=True):
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([xx, yy], -1).reshape(-1, 2))
        strides.append(torch.full((h * w, 1), float(s), device=device))
    return torch.cat(points), torch.cat(strides)


def select_detections(
    boxes: torch.Tensor,
    probs: torch.Tensor,
    *,
    score_threshold: float,
    iou_threshold: float,
    pre_nms: int,
    max_detections: int,
) -> list[dict[str, torch.Tensor]]:
    """Per image: every (point, class) above the threshold, the best `pre_nms`, class-aware NMS.

    boxes (B, A, 4), probs (B, A, C); the torch model and an exported one share it."""
    out = []
    for b, p in zip(boxes, probs, strict=True):
        point, cls = (p > score_threshold).nonzero(as_tuple=True)
        scores = p[point, cls]
        if scores.numel() > pre_nms:
            top = scores.topk(int(pre_nms)).indices
            point, cls, scores = point[top], cls[top], scores[top]
        keep = batched_nms(b[point], scores, cls, iou_threshold)[: int(max_detections)]
        out.append({"boxes": b[point[keep]], "scores": scores[keep], "labels": cls[keep]})
    return out


class _Decoded(nn.Module):
    """The exportable part of a YOLO: normalized images -> (boxes, scores) before NMS."""

    def __init__(self, yolo: YOLO) -> None:
        super().__init__()
        self.yolo = yolo

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.yolo.decode(self.yolo.forward_maps(images))


def scale(width: float, depth: float) -> tuple[tuple[int, ...], tuple[int, int]]:
    """YOLOv8's channel widths (stem to P5) and C2f depths at a width and depth multiple."""
    widths = tuple(max(8, int(round(c * width / 8)) * 8) for c in (64, 128, 256, 512, 1024))
    widths = (*widths[:4], min(widths[4], int(1024 * width)))
    return widths, (max(1, round(3 * depth)), max(1, round(6 * depth)))


class YOLO(nn.Module):
    """Backbone + PAN + decoupled head.  See the module docstring for shapes."""

    def __init__(
        self,
        *,
        num_classes: int,
        width: float,
        depth: float,
        img_size: int = 640,
        backbone: nn.Module | None = None,
    ) -> None:
        """`backbone`: another module answering `Backbone`'s contract (the stride 8/16/32
        maps, `out_channels`) in place of CSPDarknet (`recog.models.yolo_pretrained`)."""
        super().__init__()
        widths, depths = scale(width, depth)
        self.num_classes = num_classes
        self.backbone = Backbone(widths, depths) if backbone is None else backbone
        self.neck = PAN(self.backbone.out_channels, depths[0])
        self.head = DecoupledHead(self.backbone.out_channels, num_classes)
        self.head.init_bias(img_size)
        self.register_buffer("bins", torch.arange(REG_MAX, dtype=torch.float32), persistent=False)
        self.criterion = YOLOLoss()
        # Evaluation keeps low-score boxes (COCO mAP integrates over them); display filters later.
        self.score_threshold, self.iou_threshold, self.max_detections, self.pre_nms = (
            0.001,
            0.7,
            300,
            3000,
        )

    def forward_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.head(self.neck(self.backbone(images)))

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None):
        maps = self.forward_maps(images)
        if targets is not None:
            return self.criterion(self, maps, targets)
        return self.postprocess(maps)

    def postprocess(self, maps: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Per-image detections: every (point, class) above the threshold, class-aware NMS.

        Not under no_grad: the kept scores and boxes stay differentiable with
        respect to the input, which explanations and attacks need (callers
        that only predict run under no_grad already)."""
        boxes, probs = self.decode(maps)
        return select_detections(boxes, probs, **self.selection())

    def selection(self) -> dict[str, float | int]:
        """The thresholds of `select_detections` (an exported model keeps them in its metadata)."""
        return {
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
            "pre_nms": self.pre_nms,
            "max_detections": self.max_detections,
        }

    def export_parts(self) -> ExportParts:
        """The graph ends at the decoded boxes and scores; NMS runs after it (recog.deploy)."""
        return ExportParts(
            module=_Decoded(self),
            outputs=("boxes", "scores"),
            finish="nms",
            finish_args=self.selection(),
        )

    def split(
        self, maps: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flatten levels: DFL logits (B, A, 4, REG_MAX), class logits (B, A, C), points, strides."""
        b = maps[0].shape[0]
        flat = torch.cat([m.flatten(2) for m in maps], 2).transpose(1, 2)  # (B, A, 4R + C)
        dfl, cls = flat.split((4 * REG_MAX, self.num_classes), 2)
        points, strides = make_points([tuple(m.shape[-2:]) for m in maps], flat.device)
        return dfl.reshape(b, -1, 4, REG_MAX), cls, points, strides

    def distances(self, dfl: torch.Tensor) -> torch.Tensor:
        """Expected ltrb distance in stride units from DFL logits (..., 4, REG_MAX)."""
        return (dfl.float().softmax(-1) * self.bins).sum(-1)

    @staticmethod
    def to_boxes(dist: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
        lt, rb = dist.chunk(2, -1)
        return torch.cat([points - lt * strides, points + rb * strides], -1)

    def decode(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, A, 4) xyxy boxes in input pixels and (B, A, C) class probabilities."""
        dfl, cls, points, strides = self.split(maps)
        return self.to_boxes(self.distances(dfl), points, strides), cls.float().sigmoid()


class TaskAlignedAssigner:
    """TOOD's assigner: top-k points by score^alpha * IoU^beta among those inside each box."""

    def __init__(self, *, topk: int = 10, alpha: float = 0.5, beta: float = 6.0) -> None:
        self.topk, self.alpha, self.beta = topk, alpha, beta

    @torch.no_grad()
    def __call__(
        self,
        scores: torch.Tensor,
        boxes: torch.Tensor,
        points: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One image.  scores (A, C) probabilities, boxes (A, 4) predicted xyxy,
        gt_boxes (G, 4), gt_labels (G,).  Returns fg mask (A,), target boxes (A, 4),
        soft target scores (A, C)."""
        a, c = scores.shape
        if gt_boxes.numel() == 0:
            return (
                torch.zeros(a, dtype=torch.bool, device=scores.device),
                torch.zeros_like(boxes),
                torch.zeros_like(scores),
            )
        inside = (
            (points[None, :, 0] > gt_boxes[:, None, 0])
            & (points[None, :, 0] < gt_boxes[:, None, 2])
            & (points[None, :, 1] > gt_boxes[:, None, 1])
            & (points[None, :, 1] < gt_boxes[:, None, 3])
        )  # (G, A)
        ious = box_iou(gt_boxes, boxes).clamp(min=0)  # (G, A)
        cls_scores = scores[:, gt_labels].T  # (G, A)
        align = cls_scores.pow(self.alpha) * ious.pow(self.beta) * inside
        k = min(self.topk, a)
        top = align.topk(k, dim=1).indices  # (G, k)
        candidate = torch.zeros_like(inside)
        candidate.scatter_(1, top, True)
        candidate &= inside
        # A point claimed by several boxes goes to the one it overlaps most.
        multi = candidate.sum(0) > 1
        if multi.any():
            best = ious.argmax(0)
            one_hot = F.one_hot(best, candidate.shape[0]).T.bool()
            candidate = torch.where(multi[None], one_hot & inside, candidate)
        fg = candidate.any(0)
        owner = candidate.float().argmax(0)  # (A,)
        target_boxes = gt_boxes[owner]
        align = align * candidate
        # Normalize per box so its best point's target equals its best IoU (TOOD eq. 8).
        norm = align.amax(1, keepdim=True).clamp(min=1e-9)
        best_iou = (ious * candidate).amax(1, keepdim=True)
        soft = (align / norm * best_iou).amax(0)  # (A,)
        target_scores = torch.zeros_like(scores)
        target_scores[torch.arange(a, device=scores.device), gt_labels[owner]] = soft
        target_scores[~fg] = 0
        return fg, target_boxes, target_scores


class YOLOLoss:
    """BCE on soft targets + CIoU + DFL, normalized by the sum of target scores."""

    def __init__(self, *, box: float = 7.5, cls: float = 0.5, dfl: float = 1.5) -> None:
        self.gain_box, self.gain_cls, self.gain_dfl = box, cls, dfl
        self.assigner = TaskAlignedAssigner()

    def __call__(
        self, model: YOLO, maps: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """targets: per image {"boxes": (G, 4) xyxy input pixels, "labels": (G,)}."""
        dfl_logits, cls_logits, points, strides = model.split(maps)
        dist = model.distances(dfl_logits)
        pred_boxes = model.to_boxes(dist, points, strides)  # (B, A, 4)
        scores = cls_logits.float().sigmoid()
        fgs, tboxes, tscores = [], [], []
        for i, t in enumerate(targets):
            fg, tb, ts = self.assigner(
                scores[i].detach(), pred_boxes[i].detach(), points, t["boxes"].float(), t["labels"]
            )
            fgs.append(fg)
            tboxes.append(tb)
            tscores.append(ts)
        fg, target_boxes, target_scores = (
            torch.stack(fgs),
            torch.stack(tboxes),
            torch.stack(tscores),
        )
        norm = target_scores.sum().clamp(min=1.0)
        loss_cls = (
            F.binary_cross_entropy_with_logits(cls_logits.float(), target_scores, reduction="sum")
            / norm
        )
        if fg.any():
            weight = target_scores.sum(-1)[fg]
            loss_box = (
                complete_box_iou_loss(pred_boxes[fg], target_boxes[fg], reduction="none") * weight
            ).sum() / norm
            # DFL: target distances in stride units, split between the two nearest bins.
            s = strides.expand(fg.shape[0], -1, -1)[fg]
            p = points.expand(fg.shape[0], -1, -1)[fg]
            tb = target_boxes[fg]
            ltrb = torch.cat([p - tb[:, :2], tb[:, 2:] - p], -1) / s
            ltrb = ltrb.clamp(0, REG_MAX - 1 - 0.01)
            left = ltrb.long()
            w_right = ltrb - left
            logits = dfl_logits[fg].float()  # (P, 4, R)
            ce_l = F.cross_entropy(logits.reshape(-1, REG_MAX), left.reshape(-1), reduction="none")
            ce_r = F.cross_entropy(
                logits.reshape(-1, REG_MAX), (left + 1).reshape(-1), reduction="none"
            )
            dfl = (
                (ce_l * (1 - w_right.reshape(-1)) + ce_r * w_right.reshape(-1))
                .reshape(-1, 4)
                .mean(-1)
            )
            loss_dfl = (dfl * weight).sum() / norm
        else:
            loss_box = loss_dfl = cls_logits.sum() * 0.0
        parts = {
            "box": loss_box * self.gain_box,
            "cls": loss_cls * self.gain_cls,
            "dfl": loss_dfl * self.gain_dfl,
        }
        total = sum(parts.values())
        return {"loss": total, **{k: v.detach() for k, v in parts.items()}}


# AdamW at 2e-3 with light weight decay: what Ultralytics picks for short runs (its "auto"
# optimizer); and the 4-image mosaic for all but the last 10 epochs, as Ultralytics trains.
TRAIN_DEFAULTS = {"lr": 0.002, "weight_decay": 0.0005, "mosaic": 1.0}


def _build(
    *,
    num_classes: int,
    img_size: int,
    # multiples of YOLOv8's channels and C2f depths: its scales run n (0.25, 0.33) to x (1.25, 1)
    width: Annotated[float, Range(0.0625, 1.25)],
    depth: Annotated[float, Range(0.1, 1.0)],
) -> YOLO:
    return YOLO(num_classes=num_classes, width=width, depth=depth, img_size=img_size)


# (name, size word, width multiple, depth multiple): YOLOv8's n and s scales.
for _name, _word, _width, _depth in (
    ("yolo_n", "nano", 0.25, 0.33),
    ("yolo_s", "small", 0.5, 0.33),
):
    register_model(
        _name,
        task=TaskName.DETECT,
        default_img_size=320,
        min_img_size=64,
        head=("head.cls",),
        encoder="backbone",
        mean=(0, 0, 0),
        std=(1, 1, 1),
        description=f"recog YOLO, {_word} (YOLOv8-style, anchor-free, TAL assigner)",
        train_defaults=TRAIN_DEFAULTS,
    )(partial(_build, width=_width, depth=_depth))

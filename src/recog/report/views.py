"""What the report draws of each task's training batch and segmentation samples.

`recog.report.facet` says which of these each task shows; the drawing lives
here.  Panels are (image (3, H, W) uint8, title, correct or None) as
`ReportFacet.sample_panels` gives them.  Training panels show the batch as
the loss sees it: after the loader's transforms (crops, flips, the mosaic)
and, for classification, after the batch's Mixup/CutMix, with the targets
the loss is given drawn on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from recog.types import IGNORE_INDEX, Batch, Prediction, Sample

Panel = tuple[torch.Tensor, str, bool | None]
Colour = tuple[int, int, int]


def to_uint8(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Normalized float (B, 3, H, W) back to uint8 pixels."""
    pixels = images.float().cpu() * std.cpu() + mean.cpu()
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8)


def mixed_panels(
    batch: Batch,
    class_names: Sequence[str],
    *,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    mean: torch.Tensor,
    std: torch.Tensor,
    mix: Callable[..., Any] | None,
) -> list[Panel]:
    """Classification: each image titled with its label, or after Mixup/CutMix with the two
    largest shares of its soft label ("3 0.62 + 8 0.38")."""
    images, labels = batch.images.cpu(), batch.targets.cpu()
    if mix is None:
        return [(image, class_names[int(y)], None) for image, y in zip(images, labels, strict=True)]
    x, soft = mix(normalize(images), labels)
    panels = []
    for image, weights in zip(to_uint8(x, mean, std), soft, strict=True):
        top = weights.topk(min(2, weights.numel()))
        parts = [
            f"{class_names[int(k)]} {float(w):.2f}"
            for w, k in zip(top.values, top.indices, strict=True)
            if float(w) > 0.005
        ]
        panels.append((image, " + ".join(parts), None))
    return panels


#: training panels are drawn at least this many pixels wide, so names and lines stay legible
MIN_SIDE = 192


def upscaled(image: torch.Tensor) -> tuple[torch.Tensor, float]:
    """A small (3, H, W) uint8 image enlarged by a whole factor to about `MIN_SIDE` (nearest,
    so pixels stay pixels), and that factor."""
    factor = max(1, MIN_SIDE // max(1, max(image.shape[-2:])))
    return image.repeat_interleave(factor, -2).repeat_interleave(factor, -1), float(factor)


def box_panels(batch: Batch, class_names: Sequence[str], colours: Sequence[Colour]) -> list[Panel]:  # fmt: skip
    """Detection (and instances): each training image with its boxes, named by class, and its
    masks when the targets carry them; titled with the box count."""
    panels = []
    for image, target in zip(batch.images.cpu(), batch.targets, strict=True):
        image, factor = upscaled(image)
        boxes, labels = target["boxes"].cpu() * factor, target["labels"].cpu()
        out = image
        masks = target.get("masks")
        if masks is not None and len(masks):
            masks = masks.repeat_interleave(int(factor), -2).repeat_interleave(int(factor), -1)
            out = draw_segmentation_masks(out, masks.cpu().bool(), alpha=0.45,
                                          colors=[colours[int(k)] for k in labels])  # fmt: skip
        if len(boxes):
            out = draw_bounding_boxes(
                out,
                boxes,
                labels=[class_names[int(k)] for k in labels],
                colors=[colours[int(k)] for k in labels],
                width=1,
            )
        panels.append((out, f"{len(boxes)} boxes", None))
    return panels


def mask_overlay(image: torch.Tensor, mask: torch.Tensor, colours: Sequence[Colour],
                 shown: Sequence[int]) -> torch.Tensor:  # fmt: skip
    """(3, H, W) uint8 with each `shown` class of the (H, W) mask coloured (others, and 255 =
    ignore, left bare)."""
    mask = mask.cpu()
    classes = [k for k in mask.unique().tolist() if k in shown]
    if not classes:
        return image.cpu()
    masks = torch.stack([mask == k for k in classes])
    return draw_segmentation_masks(image.cpu(), masks, alpha=0.45,
                                   colors=[colours[k] for k in classes])  # fmt: skip


def mask_panels(batch: Batch, colours: Sequence[Colour], shown: Sequence[int]) -> list[Panel]:
    """Semantic segmentation: each training crop with its target mask overlaid."""
    panels = []
    for image, mask in zip(batch.images.cpu(), batch.targets.cpu(), strict=True):
        found = set(mask.unique().tolist()) - {IGNORE_INDEX}
        panels.append((mask_overlay(image, mask, colours, shown), f"{len(found)} classes", None))
    return panels


def triplets(
    samples: Sequence[tuple[Sample, Prediction]],
    colours: Sequence[Colour],
    shown: Sequence[int],
    score: Callable[[Prediction, Sample], float],
    *,
    rows: int = 8,
) -> list[Panel]:
    """Semantic segmentation samples as rows of three: image, truth, prediction (with its
    mIoU, `score`); truth and prediction in the same class colours (`legend`).  The first
    `rows` samples only: three pictures each make a page of 24 samples too long to read."""
    panels: list[Panel] = []
    for sample, pred in samples[:rows]:
        h, w = pred.mask.shape
        image = sample.image[:, :h, :w]
        panels.append((image, "image", None))
        truth = sample.target.mask
        panels.append((mask_overlay(image, truth[:h, :w], colours, shown), "truth", None))
        panels.append(
            (
                mask_overlay(image, pred.mask, colours, shown),
                f"prediction, mIoU {score(pred, sample):.2f}",
                None,
            )  # fmt: skip
        )
    return panels


def legend(class_names: Sequence[str], colours: Sequence[Colour], shown: Sequence[int]) -> list[tuple[str, Colour]]:  # fmt: skip
    """(name, colour) of each coloured class, in class order."""
    return [(class_names[k], colours[k]) for k in shown]

"""Label statistics of a training split, as the report's `labels` figure (Ultralytics' labels.jpg).

What the labels say before any model is trained: how many of each class,
and for boxes where they sit and how large they are (fractions of the
image's width and height), for masks how much of the labelled area each
class covers.  Read from the annotations before augmentation (the mosaic
and crops would change the sizes), from at most `limit` training images
spread evenly over the split (each figure says how many of how many), so a
large set costs a bounded read.  The report's facet picks each task's
function (`recog.report.facet`); the report draws the `Figure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from recog.metrics.base import Figure

#: images whose labels are read at most: listed boxes cost nothing, but a mask is decoded and
#: a generated scene drawn first (shapes at 256 px: ~70 ms a scene on the 2-core test machine,
#: 3 ms at 64 px; all 2,000 scenes of a 256-px set took two minutes, 200 take ~15 s)
LIMIT_LISTED = 20_000
LIMIT_DECODED = 200
IGNORE = 255


def spread(n: int, limit: int) -> list[int]:
    """Up to `limit` indices of range(n), evenly spaced (all of them when n <= limit)."""
    if n <= limit:
        return list(range(n))
    return torch.linspace(0, n - 1, limit).round().long().unique().tolist()


def _figure(class_names: Sequence[str], counts: Sequence[int], count_of: str, images: int,
            total: int, **extra: Any) -> Figure:  # fmt: skip
    return Figure(
        "labels",
        "labels",
        {
            "labels": list(class_names),
            "counts": [int(c) for c in counts],
            "count_of": count_of,
            "images": int(images),
            "total": int(total),
            **extra,
        },
    )


def class_labels(labels: Sequence[int], class_names: Sequence[str]) -> Figure:
    """Classification: images per class, from the split's label list (no image is read)."""
    counts = torch.bincount(torch.as_tensor(list(labels), dtype=torch.int64),
                            minlength=len(class_names))  # fmt: skip
    return _figure(class_names, counts.tolist(), "images", len(labels), len(labels))


def box_labels(dataset: Dataset, class_names: Sequence[str], *, limit: int | None = None) -> Figure:
    """Detection: boxes per class, box (w, h) and centres as fractions of the image.

    `dataset.annotation(i)` gives (boxes (N, 4) xyxy pixels, labels (N,), (H, W)) before
    augmentation (recog.data.detect); other datasets give their samples' targets.  The
    default `limit` is LIMIT_LISTED where the dataset says its annotations are listed
    (`listed_annotations`: files' records, nothing decoded), else LIMIT_DECODED."""
    n = len(dataset)  # type: ignore[arg-type]
    if limit is None:
        listed = bool(getattr(dataset, "listed_annotations", False))
        limit = LIMIT_LISTED if listed else LIMIT_DECODED
    index = spread(n, limit)
    counts = torch.zeros(len(class_names), dtype=torch.int64)
    wh, centres = [], []
    for i in index:
        boxes, labels, (h, w) = _annotation(dataset, i)
        if not len(labels):
            continue
        counts += torch.bincount(labels.long(), minlength=len(class_names))
        scale = torch.tensor([w, h], dtype=torch.float64)
        b = boxes.double().reshape(-1, 4)
        wh.append((b[:, 2:] - b[:, :2]) / scale)
        centres.append((b[:, 2:] + b[:, :2]) / 2 / scale)
    empty = torch.zeros((0, 2), dtype=torch.float64)
    return _figure(
        class_names,
        counts.tolist(),
        "boxes",
        len(index),
        n,
        box_wh=torch.cat(wh).tolist() if wh else empty.tolist(),
        box_centres=torch.cat(centres).tolist() if centres else empty.tolist(),
    )


def _annotation(dataset: Dataset, i: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    annotation = getattr(dataset, "annotation", None)
    if callable(annotation):
        return annotation(i)
    sample = dataset[i]
    h, w = sample.image.shape[-2:]
    return sample.target.boxes, sample.target.labels, (int(h), int(w))


def mask_labels(
    dataset: Dataset, class_names: Sequence[str], *, limit: int = LIMIT_DECODED
) -> Figure:
    """Semantic segmentation: images that hold each class, and each class's share of the
    labelled pixels (255 = ignore is left out).  `dataset.mask(i)` is the (H, W) class-id
    mask before augmentation (recog.data.segment); other datasets give their samples'."""
    n = len(dataset)  # type: ignore[arg-type]
    index = spread(n, limit)
    c = len(class_names)
    images = torch.zeros(c, dtype=torch.int64)
    pixels = torch.zeros(c, dtype=torch.float64)
    mask_of = getattr(dataset, "mask", None)
    for i in index:
        mask = (mask_of(i) if callable(mask_of) else dataset[i].target.mask).long().reshape(-1)
        mask = mask[(mask != IGNORE) & (mask < c)]
        found = torch.bincount(mask, minlength=c)
        images += found > 0
        pixels += found.double()
    areas = (pixels / pixels.sum().clamp(min=1)).tolist()
    return _figure(class_names, images.tolist(), "images holding the class", len(index), n,
                   areas=areas)  # fmt: skip


def instance_labels(dataset: Dataset, class_names: Sequence[str], *,
                    limit: int = LIMIT_DECODED) -> Figure:  # fmt: skip
    """Instance segmentation: instances per class, each class's share of the masked pixels,
    and box (w, h) and centres of the instances' boxes.  `dataset.instances(i)` is
    (masks (N, H, W) bool, labels (N,)) before augmentation (recog.data.segment)."""
    n = len(dataset)  # type: ignore[arg-type]
    index = spread(n, limit)
    c = len(class_names)
    counts = torch.zeros(c, dtype=torch.int64)
    pixels = torch.zeros(c, dtype=torch.float64)
    wh, centres = [], []
    for i in index:
        masks, labels = dataset.instances(i)  # type: ignore[attr-defined]
        if not len(labels):
            continue
        labels = labels.long()
        counts += torch.bincount(labels, minlength=c)
        pixels.index_add_(0, labels, masks.flatten(1).sum(1).double())
        h, w = masks.shape[-2:]
        rows, cols = masks.any(2), masks.any(1)  # (N, H), (N, W)
        scale = torch.tensor([w, h], dtype=torch.float64)
        lo = torch.stack([_first(cols), _first(rows)], 1)
        hi = torch.stack([_last(cols), _last(rows)], 1) + 1
        wh.append((hi - lo) / scale)
        centres.append((hi + lo) / 2 / scale)
    areas = (pixels / pixels.sum().clamp(min=1)).tolist()
    empty: list[list[float]] = []
    return _figure(
        class_names,
        counts.tolist(),
        "instances",
        len(index),
        n,
        areas=areas,
        box_wh=torch.cat(wh).tolist() if wh else empty,
        box_centres=torch.cat(centres).tolist() if centres else empty,
    )


def _first(flags: torch.Tensor) -> torch.Tensor:
    """(N, L) bool -> (N,) float64 index of the first True (0 when none)."""
    return flags.double().argmax(1).double()


def _last(flags: torch.Tensor) -> torch.Tensor:
    return (flags.shape[1] - 1 - flags.flip(1).double().argmax(1)).double()

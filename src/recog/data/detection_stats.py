"""`recog data stats|check` for detection annotation sets: counts, box sizes, problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from recog.data.detection_formats import read_detection

# COCO's size classes (pixels of box area) and a finer histogram of the box side.
SIDE_BINS = (0, 8, 16, 32, 64, 128, 256, 512, 10**9)


def detection_stats(path: str | Path) -> dict[str, Any]:
    ann = read_detection(path)
    boxes = [r.boxes for r in ann.records if len(r.boxes)]
    labels = (
        torch.cat([r.labels for r in ann.records])
        if ann.records
        else torch.zeros(0, dtype=torch.int64)
    )
    counts = torch.bincount(labels, minlength=len(ann.class_names)).tolist()
    all_boxes = torch.cat(boxes) if boxes else torch.zeros((0, 4))
    wh = (all_boxes[:, 2:] - all_boxes[:, :2]).clamp(min=0)
    area = wh.prod(1)
    side = area.sqrt()
    hist = {}
    for lo, hi in zip(SIDE_BINS[:-1], SIDE_BINS[1:], strict=True):
        key = f"{lo}-{hi}px" if hi < 10**9 else f">={lo}px"
        hist[key] = int(((side >= lo) & (side < hi)).sum())
    return {
        "path": str(path),
        "task": "detect",
        "images": len(ann.records),
        "negatives": sum(1 for r in ann.records if len(r.boxes) == 0),
        "objects": int(labels.numel()),
        "objects_per_class": dict(zip(ann.class_names, counts, strict=True)),
        "coco_sizes": {
            "small": int((area < 32**2).sum()),
            "medium": int(((area >= 32**2) & (area < 96**2)).sum()),
            "large": int((area >= 96**2).sum()),
        },
        "box_side_histogram": hist,
        "problems": list(ann.warnings),
    }

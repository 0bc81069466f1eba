"""What is wrong with a dataset's annotations, per task, for `recog data doctor`.

Classification: class imbalance (images per class).  Detection: the
readers' own warnings (boxes clipped to the image or dropped as empty: out of
bounds or degenerate), boxes under `MIN_BOX_SIDE` pixels, same-class boxes
overlapping at IoU >= `DUPLICATE_IOU` (one object drawn twice), images without a
box, and imbalance in boxes per class.  Segmentation: mask values that are no
class id, masks whose size differs from their image, masks with no foreground,
and imbalance in pixels per class.  The doctor's facet (`recog.doctor.facet`)
names each task's function here; image-level facts (sizes, modes, duplicates) are the
doctor's own (`recog.doctor`), asked of every task alike.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torchvision.ops import box_iou

from recog.data.formats.masks import read_mask_raw
from recog.data.images import image_size
from recog.data.inventory import Finding, Inventory, imbalance_findings
from recog.errors import RecogError
from recog.types import IGNORE_INDEX

#: a box with a side below this many pixels is degenerate (too thin to learn from)
MIN_BOX_SIDE = 2.0
#: two boxes of one class overlapping this much are one object drawn twice
DUPLICATE_IOU = 0.9


def classification_findings(inv: Inventory) -> list[Finding]:
    counts = Counter(inv.class_names[e.label] for e in inv.entries if e.label is not None)
    return imbalance_findings({n: counts.get(n, 0) for n in inv.class_names}, "images")


def _reader_finding(line: str) -> Finding:
    """A reader's warning line: a box clipped or dropped, else one about the annotation
    file itself (a size it does not record, a folder link not followed, ...)."""
    kind = (
        "box-out-of-bounds"
        if "clipped (first:" in line
        else "box-degenerate"
        if ": dropped box [" in line
        else "annotation"
    )
    path, _, _ = line.partition(": ")
    return Finding(kind, [path], line)


def detection_findings(inv: Inventory) -> list[Finding]:
    out = [_reader_finding(w) for w in inv.warnings]
    counts: Counter[str] = Counter()
    for e in inv.entries:
        assert e.boxes is not None and e.box_labels is not None
        name = str(e.path)
        if e.boxes.shape[0] == 0:
            out.append(Finding("unannotated", [name], f"{name}: no box", e.split, 0.5))
            continue
        counts.update(inv.class_names[int(c)] for c in e.box_labels)
        sides = torch.minimum(e.boxes[:, 2] - e.boxes[:, 0], e.boxes[:, 3] - e.boxes[:, 1])
        for k in torch.nonzero(sides < MIN_BOX_SIDE).flatten().tolist():
            box = [round(v, 1) for v in e.boxes[k].tolist()]
            out.append(
                Finding(
                    "box-degenerate",
                    [name],
                    f"{name}: box {box} is under {MIN_BOX_SIDE:g} px on a side",
                    e.split,
                    detail={"box": box},
                )
            )
        iou = box_iou(e.boxes, e.boxes).triu(diagonal=1)
        same = e.box_labels[:, None] == e.box_labels[None, :]
        for i, j in torch.nonzero((iou >= DUPLICATE_IOU) & same).tolist():
            boxes = [[round(v, 1) for v in e.boxes[k].tolist()] for k in (i, j)]
            out.append(
                Finding(
                    "box-duplicate",
                    [name],
                    f"{name}: two {inv.class_names[int(e.box_labels[i])]!r} boxes overlap at "
                    f"IoU {float(iou[i, j]):.2f} (one object drawn twice?)",
                    e.split,
                    float(iou[i, j]),
                    {"boxes": boxes},
                )
            )
    out += imbalance_findings({n: counts.get(n, 0) for n in inv.class_names}, "boxes")
    return out


def segmentation_findings(inv: Inventory) -> list[Finding]:
    out: list[Finding] = []
    pixels = np.zeros(max(inv.mask_classes, 1), dtype=np.int64)
    for e in inv.entries:
        assert e.mask is not None
        name = str(e.mask)
        try:
            raw = read_mask_raw(e.mask)
            size = image_size(e.path)
        except RecogError as exc:
            out.append(Finding("unreadable", [name], str(exc), e.split))
            continue
        if (raw.shape[1], raw.shape[0]) != size:
            out.append(
                Finding(
                    "mask-size",
                    [name, str(e.path)],
                    f"{name}: mask is {raw.shape[1]}x{raw.shape[0]}, its image {size[0]}x{size[1]}",
                    e.split,
                )
            )
        values, counts = np.unique(raw, return_counts=True)
        if inv.binary_masks:
            bad = values[(values != 0) & (values != 255)]
            ids = np.where(values == 255, 1, 0)
        else:
            bad = values[((values < 0) | (values >= inv.mask_classes)) & (values != IGNORE_INDEX)]
            ids = values
        if bad.size:
            out.append(
                Finding(
                    "mask-values",
                    [name],
                    f"{name}: mask values {bad[:5].tolist()} are not class ids "
                    f"(0..{inv.mask_classes - 1}, 255 = ignore)",
                    e.split,
                    detail={"values": bad[:20].tolist()},
                )
            )
        keep = (ids >= 0) & (ids < len(pixels)) & ((values != IGNORE_INDEX) | inv.binary_masks)
        np.add.at(pixels, ids[keep], counts[keep])
        if not ((ids > 0) & keep).any():
            out.append(
                Finding("unannotated", [name], f"{name}: mask has no foreground", e.split, 0.5)
            )
    # among the foreground classes only: background outweighs every class in most masks
    names = inv.class_names[: len(pixels)]
    if len(names) > 2:
        out += imbalance_findings({n: int(pixels[i]) for i, n in enumerate(names) if i}, "pixels")
    return out

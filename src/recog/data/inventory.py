"""Every image of a dataset with its split and its annotation, for `recog data doctor`.

An `Inventory` lists the files the training loaders would read, each with the
split it would train or validate in (the source's own split, else the same
seeded split `recog train` makes, so a reported leak is one training would
meet) and its annotation: a class index (class folders, CSV lists), boxes and
labels (COCO, YOLO, VOC) or a mask file (image/mask folders).  The readers
are the loaders' own (`formats/`), so the doctor sees what training sees,
including the readers' warnings (boxes clipped or dropped).  The doctor's
facet (`recog.doctor.facet`) names each task's builder here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from recog.data.formats import TASK_FORMATS, DataFormat, detect_format, segmentation_format
from recog.data.formats.class_folders import list_splits
from recog.data.formats.detection import read_detection
from recog.data.formats.masks import resolve_classes, split_pairs
from recog.data.splits import split_records
from recog.errors import RecogError
from recog.types import TaskName


@dataclass
class Entry:
    """One image file and what it is annotated with (the fields its task uses)."""

    path: Path
    split: str  # "train" or "val"
    label: int | None = None  # classification: index into the inventory's class names
    boxes: torch.Tensor | None = None  # detection: (N, 4) xyxy pixels
    box_labels: torch.Tensor | None = None  # detection: (N,) class indices
    mask: Path | None = None  # segmentation: the mask file
    width: int = 0  # detection: the image's size as the annotation gives it
    height: int = 0
    meta: dict[str, str] | None = None  # its row of the data's metadata table, if any


@dataclass
class Inventory:
    task: TaskName
    fmt: DataFormat
    root: Path
    class_names: list[str]
    entries: list[Entry]
    #: True when the source names its splits (folders, YOLO/COCO splits); False: seeded
    split_given: bool
    warnings: list[str] = field(default_factory=list)
    #: mask folders: the number of class ids masks may hold (255 = ignore aside)
    mask_classes: int = 0
    #: mask folders: 0/255 masks (foreground is 255)
    binary_masks: bool = False
    #: how a grouped split was drawn (`--group-by`); "" for the given or seeded split
    split_note: str = ""


def _built_in(spec: str, fmt: DataFormat | None) -> None:
    if fmt in (DataFormat.DIGITS, DataFormat.SHAPES):
        raise RecogError(f"{spec}: built-in data is generated, not files; give a dataset folder")


def classification_inventory(
    spec: str, *, val_split: float, seed: int, group_by: str = ""
) -> Inventory:
    fmt = detect_format(spec, among=TASK_FORMATS[TaskName.CLASSIFY])
    _built_in(spec, fmt)
    train, val, names, _ = list_splits(spec, val_split=val_split, seed=seed, group_by=group_by)
    path = Path(spec)
    entries = [
        Entry(Path(item), split, label=label,
              meta=listing.meta[i] if listing.meta is not None else None)  # fmt: skip
        for split, listing in (("train", train), ("val", val))
        for i, (item, label) in enumerate(zip(listing.items, listing.labels, strict=True))
    ]
    given = path.is_dir() and (path / "train").is_dir()
    return Inventory(TaskName.CLASSIFY, fmt, path, names, entries, split_given=given,  # type: ignore[arg-type]
                     split_note=train.note)  # fmt: skip


def detection_inventory(
    spec: str, *, val_split: float, seed: int, group_by: str = ""
) -> Inventory:
    fmt = detect_format(spec, among=TASK_FORMATS[TaskName.DETECT])
    _built_in(spec, fmt)
    path = Path(spec)
    if fmt is None:
        raise RecogError(f"{spec}: not a COCO, YOLO or VOC detection set")
    ann = read_detection(path)
    given = any(r.split == "train" for r in ann.records) and any(
        r.split == "val" for r in ann.records
    )
    notes: list[str] = []
    train, val = split_records(
        ann.records, val_split=val_split, seed=seed, spec=spec, group_by=group_by, notes=notes
    )
    entries = [
        Entry(r.path, split, boxes=r.boxes, box_labels=r.labels, width=r.width, height=r.height)
        for split, records in (("train", train), ("val", val))
        for r in records
    ]
    return Inventory(
        TaskName.DETECT, fmt, path, list(ann.class_names), entries, given, list(ann.warnings),
        split_note=notes[0] if notes else "",
    )  # fmt: skip


def segmentation_inventory(
    spec: str, *, val_split: float, seed: int, classes: str | None = None
) -> Inventory:
    fmt = segmentation_format(spec)
    _built_in(spec, fmt)
    if fmt is not DataFormat.MASK_FOLDERS:
        # a COCO set with polygons is diagnosed through its boxes (`--task detect`)
        raise RecogError(f"{spec}: the doctor reads image/mask folders for segmentation")
    path = Path(spec)
    train, val, warnings = split_pairs(path, val_split=val_split, seed=seed)
    names, decoder = resolve_classes(train + val, path, classes)
    entries = [
        Entry(p.image, split, mask=p.mask)
        for split, pairs in (("train", train), ("val", val))
        for p in pairs
    ]
    given = (path / "train" / "images").is_dir()
    return Inventory(
        TaskName.SEGMENT,
        fmt,
        path,
        names,
        entries,
        given,
        warnings,
        mask_classes=decoder.num_classes,
        binary_masks=decoder.binary,
    )


@dataclass
class Finding:
    """One thing the doctor found: its kind, the files it concerns, one line, and its details.

    kind: what it is (`leak-exact`, `label-error`, `box-overlooked`, ...: `recog.doctor.KINDS`);
    files: the image files, the first being the one a fix would change; split: theirs,
    joined with "/" when a pair crosses splits (`train/val`); score: how sure (1 = certain),
    which orders findings of one kind.
    """

    kind: str
    files: list[str]
    message: str
    split: str = ""
    score: float = 1.0
    detail: dict = field(default_factory=dict)


#: a class with fewer than 1/IMBALANCE of the largest class's count is reported
IMBALANCE = 10


def imbalance_findings(counts: dict[str, int], what: str) -> list[Finding]:
    """Classes far below the largest one (`what`: images, boxes, pixels), and empty classes."""
    if not counts:
        return []
    top_name, top = max(counts.items(), key=lambda kv: kv[1])
    out = []
    for name, n in counts.items():
        if n == 0:
            out.append(Finding("class-empty", [], f"class {name!r} has no {what}"))
        elif n * IMBALANCE < top:
            out.append(
                Finding(
                    "class-imbalance",
                    [],
                    f"class {name!r} has {n} {what}, {top / n:.0f}x fewer than {top_name!r} ({top})",
                    score=min(1.0, top / n / 100),
                    detail={"class": name, "count": n, "largest": top_name, "largest_count": top},
                )
            )
    return out

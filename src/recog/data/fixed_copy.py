"""A cleaned copy of a dataset for `recog data doctor --fix DIR`: the kept images, the same layout.

Images are copies (reflinks where the file system shares blocks copy-on-write:
`records.link_or_copy`), never hard links, so editing the copy never edits the
original.  Class folders become `DIR/train/<class>/` and `DIR/val/<class>/`
(the split the doctor diagnosed, made explicit, so dropping a file does not
re-draw a seeded split); detection sets are written in their own format by
the format's writer, with the boxes the doctor kept; mask folders become
`DIR/{train,val}/{images,masks}/`.  The doctor's facet (`recog.doctor.facet`)
names each task's writer here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recog.data.formats.detection import write_detection
from recog.data.formats.records import DetectionAnnotations, DetectionRecord, link_or_copy
from recog.data.inventory import Entry, Inventory
from recog.io import atomic_write_text


def _unique(dst: Path, used: set[Path]) -> Path:
    n, out = 1, dst
    while out in used:
        n += 1
        out = dst.with_name(f"{dst.stem}-{n}{dst.suffix}")
    used.add(out)
    return out


def write_class_folders(inv: Inventory, kept: Sequence[Entry], out: Path) -> Path:
    used: set[Path] = set()
    for e in kept:
        dst = _unique(out / e.split / inv.class_names[int(e.label)] / e.path.name, used)  # type: ignore[arg-type]
        link_or_copy(e.path, dst)
    return out


def write_detection_copy(
    inv: Inventory, kept: Sequence[Entry], out: Path, drop_boxes: dict[str, list[int]]
) -> Path:
    records = []
    for e in kept:
        assert e.boxes is not None and e.box_labels is not None
        gone = set(drop_boxes.get(str(e.path), []))
        keep = [k for k in range(e.boxes.shape[0]) if k not in gone]
        records.append(
            DetectionRecord(
                e.path,
                e.width,
                e.height,
                e.boxes[keep],
                e.box_labels[keep],
                e.split if inv.split_given else "",
            )  # fmt: skip
        )
    ann = DetectionAnnotations(records, list(inv.class_names))
    return write_detection(ann, out, fmt=str(inv.fmt))  # type: ignore[arg-type]


def write_mask_folders(inv: Inventory, kept: Sequence[Entry], out: Path) -> Path:
    for e in kept:
        assert e.mask is not None
        link_or_copy(e.path, out / e.split / "images" / e.path.name)
        link_or_copy(e.mask, out / e.split / "masks" / e.mask.name)
    names = "".join(f"{n}\n" for n in inv.class_names)
    atomic_write_text(out / "classes.txt", names)
    return out

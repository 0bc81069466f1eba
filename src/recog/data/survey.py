"""Surveys: cheap facts about a dataset, measured before anything is decoded.

The recipe (`recog.recipe`) chooses what a user left out from these facts:
image and class counts from the same listing the loaders use (so the counts
are the split that will train), image sides from the headers of a sample of
training images (no pixel decode; the same Pillow header read `data stats`
uses), boxes per image from the annotations.  A file whose header cannot be
read is left out of the sample; the loaders report it later.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path

from recog.data.formats import NOT_SEGMENTATION, DataFormat, segmentation_format
from recog.data.formats.class_folders import list_splits
from recog.data.formats.coco import split_coco_masks
from recog.data.formats.detection import read_detection
from recog.data.formats.masks import resolve_classes, split_pairs
from recog.data.formats.shapes import ShapesConfig, parse_shapes
from recog.data.images import image_size
from recog.data.splits import split_records
from recog.errors import RecogError
from recog.types import DataFacts, TaskName

#: headers read per survey; the median of 64 sides is stable to a few pixels on the shared sets
SIDE_SAMPLE = 64


def _header_size(path: Path) -> tuple[int, int] | None:
    try:
        return image_size(path)
    except (RecogError, ValueError):
        return None


def _sides(sizes: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """(median shorter side, median longer side) of (w, h) pairs; (0, 0) for none."""
    sizes = list(sizes)
    if not sizes:
        return 0, 0
    return (
        int(statistics.median(min(s) for s in sizes)),
        int(statistics.median(max(s) for s in sizes)),
    )


def _sample(items: list, count: int = SIDE_SAMPLE) -> list:
    """An evenly spaced sample (deterministic, covers every class of a sorted listing)."""
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def survey_classification(
    spec: str, *, val_split: float, seed: int, group_by: str = ""
) -> DataFacts:
    train, val, names, name = list_splits(spec, val_split=val_split, seed=seed, group_by=group_by)
    sizes = []
    for item in _sample(train.items):
        if isinstance(item, Path):
            size = _header_size(item)
            if size is not None:
                sizes.append(size)
        else:  # an in-memory (3, H, W) image (digits)
            sizes.append((int(item.shape[-1]), int(item.shape[-2])))
    short, long = _sides(sizes)
    return DataFacts(
        TaskName.CLASSIFY, name, len(train.items), len(val.items), tuple(names), short, long,
        split=train.note,
    )  # fmt: skip


def survey_detection(
    spec: str, *, val_split: float, seed: int, group_by: str = ""
) -> DataFacts:
    counts = parse_shapes(spec)
    if counts is not None:
        if group_by:
            raise RecogError(f"--group-by: {spec} has no sessions to group by")
        shapes = ShapesConfig()
        mean_objects = (1 + shapes.max_objects) / 2
        box = (shapes.min_size + shapes.max_size) / 2
        side = shapes.img_size
        return DataFacts(
            TaskName.DETECT, "shapes", *counts, shapes.classes, side, side, mean_objects, box
        )
    path = Path(spec)
    if not path.exists():
        raise RecogError(f"{spec}: no such file or directory")
    ann = read_detection(path)
    notes: list[str] = []
    train, val = split_records(
        ann.records, val_split=val_split, seed=seed, spec=spec, group_by=group_by, notes=notes
    )
    short, long = _sides((r.width, r.height) for r in train)
    fracs = [
        float(max(b[2] - b[0], b[3] - b[1])) / max(r.width, r.height, 1)
        for r in train
        for b in r.boxes.tolist()
    ]
    return DataFacts(
        TaskName.DETECT,
        path.stem if path.is_file() else path.name,
        len(train),
        len(val),
        tuple(ann.class_names),
        short,
        long,
        sum(int(r.boxes.shape[0]) for r in train) / max(1, len(train)),
        statistics.median(fracs) if fracs else 0.0,
        split=notes[0] if notes else "",
    )


def survey_segmentation(
    spec: str, *, instance: bool, val_split: float, seed: int, classes: list[str] | None,
    group_by: str = "",
) -> DataFacts:  # fmt: skip
    if group_by:  # an honest limit: image/mask pairs and COCO masks split image by image
        raise RecogError(
            f"--group-by: {spec}: grouped splits are for classification and detection data; "
            "split segmentation data into train/ and val/ folders by session yourself"
        )
    fmt = segmentation_format(spec)
    if fmt is DataFormat.SHAPES:
        counts = parse_shapes(spec)
        shapes = ShapesConfig()
        names = shapes.classes if instance else ("background", *shapes.classes)
        side = shapes.img_size
        return DataFacts(
            TaskName.SEGMENT, "shapes", *counts, tuple(names), side, side, mask_side=side
        )
    path = Path(spec)
    if not path.exists():
        raise RecogError(f"{spec}: no such file or directory")
    if fmt is DataFormat.COCO:
        train_images, val_images, _, names = split_coco_masks(path, val_split=val_split, seed=seed)
        short, long = _sides((i.width, i.height) for i in train_images)
        names = names if instance else ["background", *names]
        return DataFacts(
            TaskName.SEGMENT,
            path.stem,
            len(train_images),
            len(val_images),
            tuple(names),
            short,
            long,
            mask_side=short,
        )
    if fmt is not DataFormat.MASK_FOLDERS:
        raise RecogError(f"{spec}: {NOT_SEGMENTATION}")
    train, val, _ = split_pairs(path, val_split=val_split, seed=seed)
    names, _ = resolve_classes(train + val, path, classes)
    sample = _sample(train)
    short, long = _sides(s for s in (_header_size(p.image) for p in sample) if s is not None)
    mask_short, _ = _sides(s for s in (_header_size(p.mask) for p in sample) if s is not None)
    return DataFacts(
        TaskName.SEGMENT,
        path.name,
        len(train),
        len(val),
        tuple(names),
        short,
        long,
        mask_side=mask_short,
    )

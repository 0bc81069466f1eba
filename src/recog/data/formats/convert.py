"""`recog data convert|split`: one format written as another.

Detection: any format `read_detection` reads -> COCO, YOLO or VOC
(`convert_detection`), optionally with the train/val split `recog train`
would use (`split_detection`).  Masks: COCO segmentations <-> image/mask
folders (`convert_masks`):
- `--to masks` from a COCO JSON with polygons or RLE: `OUT/images/` (copies,
  `records.link_or_copy`), `OUT/masks/<stem>.png` class ids (0 = background, later
  annotations painted over earlier ones), `OUT/data.yaml` with the classes.
- `--to masks` from a mask folder (palette, binary 0/255 or grey RGB masks):
  the same layout with plain greyscale class-id PNGs.
- `--to coco` from a mask folder: `OUT/images/` (copies) and
  `OUT/annotations.json` with one COCO instance per connected region of each
  class but the first (background), with an RLE segmentation.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np

from recog.data.formats import DataFormat, infer_task, segmentation_format
from recog.data.formats.coco import read_coco_image, read_coco_masks, semantic_mask
from recog.data.formats.detection import (
    DETECTION_FORMATS,
    DetectionFormat,
    read_detection,
    write_detection,
)
from recog.data.formats.masks import (
    all_pairs,
    encode_png,
    load_pair,
    resolve_classes,
)
from recog.data.formats.records import DetectionAnnotations, link_or_copy
from recog.data.splits import check_split_settings, split_records
from recog.errors import RecogError
from recog.io import atomic_write_bytes, atomic_write_text
from recog.paths import refuse_overlap
from recog.types import TaskName
from recog.yaml_text import dump_yaml


def convert_detection(
    src: str | Path,
    *,
    to: DetectionFormat,
    out: str | Path,
    class_names: list[str] | None = None,
) -> Path:
    """Read `src` in whatever format it is and write it as `to` under `out`."""
    if to not in DETECTION_FORMATS:
        raise RecogError(
            f"unknown annotation format {to!r}; choose one of {', '.join(DETECTION_FORMATS)}"
        )
    check_out(src, out, to=to)
    return write_detection(read_detection(src, class_names=class_names), out, fmt=to)


def split_detection(
    src: str | Path, *, to: DetectionFormat, out: str | Path, val_split: float, seed: int,
    group_by: str = "",
) -> Path:  # fmt: skip
    """Write `src` as `to` under `out` with the train/val split `recog train` would use (with
    `group_by`, each group of file names whole on one side, as `recog train --group-by`)."""
    check_split_settings(val_split, seed)  # also when the source brings its own split
    check_out(src, out, to=to)
    ann = read_detection(src)
    notes: list[str] = []
    train, val = split_records(
        ann.records, val_split=val_split, seed=seed, spec=str(src), group_by=group_by, notes=notes
    )
    for note in notes:
        print(note)
    records = [replace(r, split="train") for r in train] + [replace(r, split="val") for r in val]
    return write_detection(
        DetectionAnnotations(records, ann.class_names, ann.warnings), out, fmt=to
    )


def convert_data(src: str, *, to: str, out: str, classes: str | None = None) -> Path:
    """`recog data convert SRC --to FORMAT --out OUT`; the main file written.  Masks are
    converted as masks (`--to masks`, or a source that holds masks); anything else,
    class folders included, meets the detection reader."""
    masks = {TaskName.SEGMENT: lambda: convert_masks(src, to=to, out=out, classes=classes)}
    # the target format says the task when it is masks; else the source does
    task = TaskName.SEGMENT if to == DataFormat.MASK_FOLDERS else infer_task(src)
    return masks.get(task, lambda: convert_detection(src, to=cast(DetectionFormat, to), out=out))()


def convert_masks(src: str | Path, *, to: str, out: str | Path, classes: str | None = None) -> Path:
    """Write `src` as `to` ("masks" or "coco") under `out`; returns the main file written."""
    src, out = Path(src), Path(out)
    check_out(src, out, to=to)
    fmt = segmentation_format(src, among=(DataFormat.COCO, DataFormat.MASK_FOLDERS))
    if to == "masks" and fmt is DataFormat.COCO:
        return _coco_to_masks(src, out)
    if fmt is not DataFormat.MASK_FOLDERS:
        raise RecogError(f"{src}: not an image/mask folder (images/ + masks/) or a COCO JSON")
    pairs = all_pairs(src)
    names, decode = resolve_classes(pairs, src, classes)
    if to == "masks":
        (out / "images").mkdir(parents=True, exist_ok=True)
        for pair in pairs:
            _, mask = load_pair(pair, decode)
            link_or_copy(pair.image, out / "images" / pair.image.name)
            atomic_write_bytes(out / "masks" / f"{pair.image.stem}.png", encode_png(mask))
        return _write_yaml(out, names)
    if to == "coco":
        return _masks_to_coco(pairs, names, decode, out)
    raise RecogError(f"masks convert to {to!r}: use masks or coco")


def check_out(src: str | Path, out: str | Path, *, to: str) -> None:
    """A converted set goes apart from its source, into a new or empty folder (COCO to a
    `.json`: a new file, beside no earlier `images/`), so no file of the user's is replaced."""
    out = Path(out)
    refuse_overlap(out, [src], flag="output")
    if to == "coco" and out.suffix.lower() == ".json":
        if out.exists() or out.is_symlink():
            raise RecogError(f"output {out}: exists; give a new file name")
        out = out.parent / "images"  # where images from outside its folder are copied
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RecogError(f"output {out}: exists and is not empty; give a new or empty folder")


def _write_yaml(out: Path, names: list[str]) -> Path:
    path = out / "data.yaml"
    atomic_write_text(path, dump_yaml({"classes": names}))
    return path


def _coco_to_masks(src: Path, out: Path) -> Path:
    images, cat_index, names = read_coco_masks(src)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for info in images:
        _, masks, labels = read_coco_image(info, cat_index)
        link_or_copy(info.path, out / "images" / info.path.name)
        atomic_write_bytes(
            out / "masks" / f"{info.path.stem}.png", encode_png(semantic_mask(masks, labels))
        )
    return _write_yaml(out, ["background", *names])


def _masks_to_coco(pairs, names, decode, out: Path) -> Path:
    # pycocotools and scipy are needed only here; imported when a mask set is converted
    from pycocotools import mask as mask_utils
    from scipy import ndimage

    out.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, pair in enumerate(pairs, start=1):
        _, mask = load_pair(pair, decode)
        h, w = mask.shape
        link_or_copy(pair.image, out / "images" / pair.image.name)  # the set reads back alone
        images.append(
            {"id": image_id, "file_name": f"images/{pair.image.name}", "width": w, "height": h}
        )
        for k in range(1, len(names)):
            regions, count = ndimage.label((mask == k).numpy())
            for r in range(1, count + 1):
                region = np.asfortranarray((regions == r).astype(np.uint8))
                rle = mask_utils.encode(region)
                rle["counts"] = rle["counts"].decode("ascii")
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": k,
                        "segmentation": rle,
                        "area": float(mask_utils.area(rle)),
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                        "iscrowd": 0,
                    }
                )
    categories = [{"id": k, "name": n} for k, n in enumerate(names) if k > 0]
    path = out / "annotations.json"
    atomic_write_text(
        path, json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path

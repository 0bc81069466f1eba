"""COCO JSON: boxes and masks (one job: one file format, whose boxes and masks share its images, categories and checks).

Boxes: `read_coco`, `write_coco`; masks: `read_coco_masks`, `read_coco_image`.

A COCO `bbox` is `[x, y, w, h]` in pixels (top-left corner and size), read as
xyxy `(x, y, x + w, y + h)`.  Category ids may be any integers: they map to
contiguous class indices in ascending id order, named by the categories.
`iscrowd=1` annotations are skipped (they mark regions, not countable
objects).  Image `file_name`s are relative to `image_root`, by default the
JSON's own folder; the writer records them that way and never copies images.
Written coordinates are rounded to 0.001 px.

Masks: polygon or RLE `segmentation`s decode through pycocotools into one
boolean mask per (non-crowd) annotation; `semantic_mask` paints them into
class ids (0 = background, class k -> k + 1, later annotations on top).
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recog.console import warn
from recog.data.formats.records import (
    BoxChecker,
    DetectionAnnotations,
    DetectionRecord,
    finite_number,
    link_or_copy,
    output_names,
    short_repr,
)
from recog.data.formats.sizes import SizeCheck
from recog.data.images import confine, read_image
from recog.data.splits import seeded_split
from recog.errors import RecogError
from recog.io import atomic_write_text


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecogError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecogError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecogError(
            f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
        ) from None
    except RecursionError:
        raise RecogError(f"{path}: JSON nested too deeply to be a COCO file") from None
    except ValueError as exc:  # an integer of over 4,300 digits
        raise RecogError(f"{path}: unreadable JSON ({str(exc).split(';')[0]})") from None
    if not isinstance(data, dict):
        raise RecogError(
            f"{path}: not a COCO file (top level is a {type(data).__name__}, expected an object)"
        )
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise RecogError(f"{path}: not a COCO file (no {key!r} list)")
    if not isinstance(data.get("annotations", []), list):
        raise RecogError(f"{path}: 'annotations' is not a list")
    return data


def _categories(path: Path, entries: list[Any]) -> tuple[dict[int, int], list[str]]:
    """category id -> contiguous class index (ascending id), and the class names."""
    by_id: dict[int, str] = {}
    for k, cat in enumerate(entries):
        if (
            not isinstance(cat, dict)
            or type(cat.get("id")) is not int
            or not isinstance(cat.get("name"), str)
        ):
            raise RecogError(f"{path}: categories[{k}] needs an integer 'id' and a string 'name'")
        if cat["id"] in by_id:
            raise RecogError(f"{path}: category id {cat['id']} appears twice")
        by_id[cat["id"]] = cat["name"]
    names = [by_id[i] for i in sorted(by_id)]
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    if repeated:
        raise RecogError(f"{path}: category names {repeated} are used by more than one id")
    return {cat_id: i for i, cat_id in enumerate(sorted(by_id))}, names


def _images(path: Path, entries: list[Any]) -> dict[Any, dict[str, Any]]:
    images: dict[Any, dict[str, Any]] = {}
    for k, img in enumerate(entries):
        if (
            not isinstance(img, dict)
            or not _is_id(img.get("id"))
            or not isinstance(img.get("file_name"), str)
        ):
            raise RecogError(
                f"{path}: images[{k}] needs an integer or string 'id' and a string 'file_name'"
            )
        if img["id"] in images:
            raise RecogError(f"{path}: image id {img['id']} appears twice")
        images[img["id"]] = img
    return images


def _is_id(value: object) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _json_number(value: object, *, where: str) -> float:
    """A finite JSON number; a string or a boolean is refused, not read as one (COCO
    tools, pycocotools among them, compute with these values as numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecogError(f"{where}: {short_repr(value)} is not a number")
    return finite_number(value, where=where)


def _bbox(where: str, ann: dict[str, Any]) -> list[float]:
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise RecogError(f"{where}: 'bbox' must be a list [x, y, w, h], got {short_repr(bbox)}")
    x, y, w, h = (_json_number(v, where=f"{where}: bbox") for v in bbox)
    return [x, y, x + w, y + h]


def _repeated_ids(path: Path, entries: list[Any]) -> list[str]:
    """A warning when annotation ids repeat (the boxes are kept; tools that look
    annotations up by id, pycocotools' among them, would lose all but one)."""
    ids = Counter(a["id"] for a in entries if isinstance(a, dict) and _is_id(a.get("id")))
    repeated = [i for i, n in ids.items() if n > 1]
    if not repeated:
        return []
    return [
        f"{path}: annotation 'id' {short_repr(repeated[0])} is used {ids[repeated[0]]} times"
        + (f" ({len(repeated) - 1} more ids repeat too)" if len(repeated) > 1 else "")
    ]


def _nothing_to_learn(path: Path, data: dict[str, Any]) -> list[str]:
    """A warning when the file holds no category or no annotation: every image a negative."""
    empty = [key for key in ("categories", "annotations") if not data.get(key)]
    if not empty:
        return []
    return [
        f"{path}: {' and '.join(repr(k) for k in empty)} "
        f"{'are' if len(empty) > 1 else 'is'} empty: no object to learn from"
    ]


def _split_of(folder: str) -> str:
    """The split an official COCO image folder holds: `train2017` -> train, `val2017` -> val."""
    return next((s for s in ("train", "val", "test") if folder.startswith(s)), "")


def find_coco_splits(root: Path) -> list[tuple[Path, Path]]:
    """(annotation file, image folder) pairs of the official COCO layout, or []:
    `root/annotations/instances_<name>.json` beside `root/<name>/`."""
    ann_dir = root / "annotations"
    files = sorted(ann_dir.glob("instances_*.json")) if ann_dir.is_dir() else []
    pairs = [(f, root / f.stem.removeprefix("instances_")) for f in files]
    return [(f, images) for f, images in pairs if images.is_dir()]


def read_coco(
    json_path: str | Path, *, image_root: str | Path | None = None
) -> DetectionAnnotations:
    """Records in the order of the JSON's `images`; images without annotations are negatives.

    `json_path` may also be the root of the official COCO layout (`find_coco_splits`):
    every annotation file is read with its image folder, and its records carry the
    split the folder's name says (`train2017` -> train)."""
    path = Path(json_path)
    splits = find_coco_splits(path) if path.is_dir() else []
    if not splits:
        return _read_coco_file(path, image_root=image_root)
    parts = [
        _read_coco_file(f, image_root=images, split=_split_of(images.name)) for f, images in splits
    ]
    first = splits[0][0]
    for (f, _), part in zip(splits, parts, strict=True):
        if part.class_names != parts[0].class_names:
            raise RecogError(
                f"{f}: its categories {short_repr(part.class_names, 200)} differ from "
                f"{first.name}'s {short_repr(parts[0].class_names, 200)}"
            )
    return DetectionAnnotations(
        [r for part in parts for r in part.records],
        parts[0].class_names,
        [line for part in parts for line in part.warnings],
    )


def _read_coco_file(
    path: Path, *, image_root: str | Path | None, split: str = ""
) -> DetectionAnnotations:
    """One COCO JSON's records (`read_coco`), each marked with `split`."""
    data = _load(path)
    cat_index, class_names = _categories(path, data["categories"])
    images = _images(path, data["images"])
    if not images:
        raise RecogError(f"{path}: lists no images")
    boxes: dict[Any, list[tuple[list[float], int, str]]] = {image_id: [] for image_id in images}
    crowd = 0
    for k, where, ann in _annotations(path, data, images, cat_index):
        if ann.get("iscrowd", 0):
            crowd += 1
            continue
        name = f"annotation id {_id_text(ann, k)} ({images[ann['image_id']]['file_name']})"
        boxes[ann["image_id"]].append((_bbox(where, ann), cat_index[ann["category_id"]], name))

    base = Path(image_root) if image_root is not None else path.parent
    checker = BoxChecker(warnings=_repeated_ids(path, data.get("annotations", [])))
    checker.warnings += _nothing_to_learn(path, data)
    sizes = SizeCheck()
    records = []
    for image_id, img in images.items():
        where = f"{path}: image id {image_id}"
        file = confine(base / img["file_name"], base, where=where)
        objects = boxes[image_id]
        if not file.is_file():
            checker.warnings.append(
                f"{where} {img['file_name']!r} not found at {file}; "
                f"skipped with its {len(objects)} annotation(s)"
            )
            continue
        size = sizes.size(
            img.get("width"), img.get("height"), file, where=where, fields=("'width'", "'height'")
        )
        if size is None:  # an unreadable image, as a missing one
            continue
        width, height = size
        kept_boxes, labels = checker.clean(
            [b for b, _, _ in objects],
            [c for _, c, _ in objects],
            width=width,
            height=height,
            where=str(path),
            names=[n for _, _, n in objects],
        )
        records.append(DetectionRecord(file, width, height, kept_boxes, labels, split))
    if not records:
        raise RecogError(f"{path}: none of its {len(images)} images were found under {base}")
    warnings = sizes.finish() + checker.finish()
    if crowd:
        warnings.append(f"{path}: skipped {crowd} crowd annotation(s) (iscrowd=1)")
    return DetectionAnnotations(records, class_names, warnings)


def _inside(path: Path, base: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(base))


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(base))).as_posix()
    except ValueError:  # another drive on Windows: no relative path exists
        return Path(os.path.abspath(path)).as_posix()


def write_coco(
    ann: DetectionAnnotations, out_json: str | Path, *, image_root: str | Path | None = None
) -> Path:
    """One COCO JSON at `out_json`; category ids are class index + 1, image and annotation ids count from 1."""
    out_json = Path(out_json)
    base = Path(image_root) if image_root is not None else out_json.parent
    outside = [r for r in ann.records if not _inside(r.path, base)]
    linked = {id(r): name for r, name in zip(outside, output_names(outside), strict=True)}
    images, annotations = [], []
    for image_id, record in enumerate(ann.records, start=1):
        file_name = _relative(record.path, base)
        if id(record) in linked:  # an image from elsewhere: linked in, so the set reads back
            file_name = f"images/{linked[id(record)]}"
            link_or_copy(record.path, base / file_name)
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": record.width,
                "height": record.height,
            }
        )
        for (x1, y1, x2, y2), label in zip(
            record.boxes.tolist(), record.labels.tolist(), strict=True
        ):
            x, y = round(x1, 3), round(y1, 3)
            w, h = round(round(x2, 3) - x, 3), round(round(y2, 3) - y, 3)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": [x, y, w, h],
                    "area": round(w * h, 3),
                    "iscrowd": 0,
                }
            )
    data = {
        "info": {"description": "written by recog"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(ann.class_names)],
    }
    atomic_write_text(out_json, json.dumps(data) + "\n")
    return out_json


# ------------------------------------------------------------------------- masks
@dataclass
class CocoImage:
    """One image of a COCO mask set and its segmented (non-crowd) annotations."""

    path: Path
    height: int
    width: int
    anns: list[dict[str, Any]]


def _id_text(ann: dict[str, Any], k: int) -> str:
    """An annotation's id for a message (cut when long); `#k` when it has none."""
    value = ann.get("id", f"#{k}")
    text = short_repr(value)
    return value if isinstance(value, str) and text == repr(value) else text


def _annotations(
    path: Path, data: dict[str, Any], images: dict[Any, Any], cat_index: dict[int, int]
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(index, where, annotation) of each annotation, after checking it is an object whose
    image and category are listed (boxes and masks read the same list)."""
    for k, ann in enumerate(data.get("annotations", [])):
        if not isinstance(ann, dict):
            raise RecogError(f"{path}: annotations[{k}] is not an object")
        where = f"{path}: annotation id {_id_text(ann, k)}"
        if not _is_id(ann.get("image_id")) or ann["image_id"] not in images:
            raise RecogError(
                f"{where}: image_id {short_repr(ann.get('image_id'))} is not in 'images'"
            )
        if not _is_id(ann.get("category_id")) or ann["category_id"] not in cat_index:
            raise RecogError(
                f"{where}: category_id {short_repr(ann.get('category_id'))} is not in "
                f"'categories' (ids {short_repr(sorted(cat_index), 200)})"
            )
        yield k, where, ann


def read_coco_masks(path: Path) -> tuple[list[CocoImage], dict[int, int], list[str]]:
    """Images with their segmented (non-crowd) annotations, category id -> index, names."""
    data = _load(path)
    cat_index, names = _categories(path, data["categories"])
    images = _images(path, data["images"])
    anns: dict[Any, list[dict[str, Any]]] = {i: [] for i in images}
    for line in _repeated_ids(path, data.get("annotations", [])) + _nothing_to_learn(path, data):
        warn(line)
    for _, where, ann in _annotations(path, data, images, cat_index):
        if ann.get("iscrowd", 0):
            continue
        _check_segmentation(where, ann.get("segmentation"))
        anns[ann["image_id"]].append(ann)
    out = []
    sizes = SizeCheck()
    for image_id, img in images.items():
        where = f"{path}: image id {image_id}"
        file = confine(path.parent / img["file_name"], path.parent, where=where)
        if not file.is_file() and (path.parent / "images" / img["file_name"]).is_file():
            file = confine(path.parent / "images" / img["file_name"], path.parent, where=where)
        if not file.is_file():
            warn(f"{file}: not found; skipped")
            continue
        size = sizes.size(
            img.get("width"), img.get("height"), file, where=where, fields=("'width'", "'height'")
        )
        if size is not None:  # else an unreadable image, as a missing one
            out.append(CocoImage(file, size[1], size[0], anns[image_id]))
    for line in sizes.finish():
        warn(line)
    if not out:
        raise RecogError(f"{path}: none of its images were found")
    return out, cat_index, names


def _check_segmentation(where: str, segm: object) -> None:
    """Polygons (lists of 3+ (x, y) pairs of finite numbers) or an RLE ({"size": [h, w],
    "counts": str or list of ints}), as pycocotools takes them; else a RecogError."""
    if isinstance(segm, list) and segm:
        for polygon in segm:
            if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                raise RecogError(
                    f"{where}: a polygon must be a list of 3 or more x, y pairs, "
                    f"got {short_repr(polygon)}"
                )
            for value in polygon:
                _json_number(value, where=f"{where}: polygon")
        return
    if isinstance(segm, dict):
        size, counts = segm.get("size"), segm.get("counts")
        if not (
            isinstance(size, list)
            and len(size) == 2
            and all(type(v) is int and 0 < v < 2**31 for v in size)
        ):
            raise RecogError(f"{where}: RLE 'size' must be [height, width], got {short_repr(size)}")
        if isinstance(counts, list):
            if not all(type(v) is int and 0 <= v < 2**32 for v in counts):
                raise RecogError(f"{where}: RLE 'counts' must be run lengths (integers >= 0)")
        elif not isinstance(counts, str) or not counts.isascii():
            raise RecogError(f"{where}: RLE 'counts' must be a list of integers or a string")
        return
    raise RecogError(f"{where}: no 'segmentation' (polygons or RLE) to train masks on")


def split_coco_masks(
    path: Path, *, val_split: float, seed: int
) -> tuple[list[CocoImage], list[CocoImage], dict[int, int], list[str]]:
    """(train, val) images of a COCO mask set (`seeded_split`), category id -> index, names."""
    images, cat_index, names = read_coco_masks(path)
    train, val = seeded_split(len(images), val_split, seed)
    return [images[i] for i in train], [images[i] for i in val], cat_index, names


def read_coco_image(
    info: CocoImage, cat_index: dict[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The image (3, H, W) uint8, its masks (N, H, W) bool and labels (N,) int64."""
    # pycocotools is needed only by COCO mask sets; imported when one is read
    from pycocotools import mask as mask_utils

    image = read_image(info.path)
    h, w = image.shape[-2:]
    if (h, w) != (info.height, info.width):
        raise RecogError(
            f"{info.path}: image is {w}x{h} but the COCO file says {info.width}x{info.height}"
        )
    masks, labels = [], []
    for ann in info.anns:
        segm = ann["segmentation"]
        if isinstance(segm, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
        elif isinstance(segm.get("counts"), list):
            rle = mask_utils.frPyObjects(segm, h, w)
        else:
            rle = segm
        with warnings.catch_warnings():  # pycocotools' numpy-2 copy= notice
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = mask_utils.decode(rle)
        masks.append(torch.from_numpy(decoded.astype(bool)))
        labels.append(cat_index[ann["category_id"]])
    stacked = torch.stack(masks) if masks else torch.zeros((0, h, w), dtype=torch.bool)
    return image, stacked, torch.tensor(labels, dtype=torch.int64)


def semantic_mask(masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool masks and (N,) labels -> (H, W) uint8: 0 background, label + 1 on top."""
    semantic = torch.zeros(masks.shape[-2:], dtype=torch.uint8)
    for m, label in zip(masks, labels.tolist(), strict=True):
        semantic[m] = label + 1
    return semantic

"""`recog data convert` for masks: COCO segmentations <-> image/mask folders.

- `--to masks` from a COCO JSON with polygons or RLE: `OUT/images/` (links,
  or copies), `OUT/masks/<stem>.png` class ids (0 = background, later
  annotations painted over earlier ones), `OUT/data.yaml` with the classes.
- `--to masks` from a mask folder (palette, binary 0/255 or grey RGB masks):
  the same layout with plain greyscale class-id PNGs.
- `--to coco` from a mask folder: one COCO instance per connected region of
  each class but the first (background), with an RLE segmentation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from recog.data.detection_formats import link_or_copy
from recog.data.masks import all_pairs, encode_png, is_mask_dir, load_pair, resolve_classes
from recog.errors import RecogError
from recog.io import atomic_write_bytes, atomic_write_text


def convert_masks(src: str | Path, *, to: str, out: str | Path, classes: str | None = None) -> Path:
    """Write `src` as `to` ("masks" or "coco") under `out`; returns the main file written."""
    src, out = Path(src), Path(out)
    if to == "masks" and src.suffix == ".json":
        return _coco_to_masks(src, out)
    if not is_mask_dir(src):
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


def _write_yaml(out: Path, names: list[str]) -> Path:
    path = out / "data.yaml"
    atomic_write_text(path, yaml.safe_dump({"classes": names}, sort_keys=False))
    return path


def _coco_to_masks(src: Path, out: Path) -> Path:
    from recog.data.segmentation_dataset import _CocoLoader, read_coco_masks

    images, cat_index, names = read_coco_masks(src)
    loader = _CocoLoader(images, cat_index, semantic=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for i, info in enumerate(images):
        item = loader(i)
        link_or_copy(info.path, out / "images" / info.path.name)
        atomic_write_bytes(out / "masks" / f"{info.path.stem}.png", encode_png(item.mask))
    return _write_yaml(out, ["background", *names])


def _masks_to_coco(pairs, names, decode, out: Path) -> Path:
    from pycocotools import mask as mask_utils
    from scipy import ndimage

    out.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, pair in enumerate(pairs, start=1):
        _, mask = load_pair(pair, decode)
        h, w = mask.shape
        images.append(
            {"id": image_id, "file_name": str(pair.image.resolve()), "width": w, "height": h}
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

"""Plant known defects into a copy of a dataset, so the doctor's recall and precision are measured.

`plant_class_folders` copies a train/val class-folder set and plants exact
duplicates (a training file copied byte for byte into val), near duplicates
(a training image resized, re-encoded at another JPEG quality and cropped by a
few percent, saved into val) and flipped labels (training files moved to
another class's folder).  `plant_boxes` removes and shifts boxes of a VOC set.
Both return what they planted; nothing of the source is modified.
"""

from __future__ import annotations

import random
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image


@dataclass
class Planted:
    exact: list[tuple[Path, Path]] = field(default_factory=list)  # (original, copy)
    near: list[tuple[Path, Path]] = field(default_factory=list)
    flipped: list[Path] = field(default_factory=list)  # where each flipped file now lies


def _near_copy(src: Path, dst: Path, rng: random.Random) -> None:
    with Image.open(src) as img:
        img = img.convert("RGB")
        w, h = img.size
        cut = rng.uniform(0.02, 0.06)  # a few percent off each side
        box = (int(w * cut), int(h * cut), w - int(w * cut), h - int(h * cut))
        img = img.crop(box)
        scale = rng.uniform(0.5, 0.8)
        img = img.resize((max(8, int(img.width * scale)), max(8, int(img.height * scale))))
        img.save(dst, format="JPEG", quality=rng.choice((60, 70, 85)))


def plant_class_folders(
    src: Path, dst: Path, *, exact: int = 10, near: int = 10, flip: float = 0.1, seed: int = 0
) -> Planted:
    shutil.copytree(src, dst)
    rng = random.Random(seed)
    classes = sorted(p.name for p in (dst / "train").iterdir() if p.is_dir())
    train = sorted(p for c in classes for p in (dst / "train" / c).iterdir() if p.is_file())
    chosen = rng.sample(train, exact + near)
    out = Planted()
    for i, original in enumerate(chosen):
        cls = original.parent.name
        if i < exact:
            copy = dst / "val" / cls / f"planted-exact-{i}{original.suffix}"
            shutil.copyfile(original, copy)
            out.exact.append((original, copy))
        else:
            copy = dst / "val" / cls / f"planted-near-{i}.jpg"
            _near_copy(original, copy, rng)
            out.near.append((original, copy))
    used = set(chosen)
    rest = [p for p in train if p not in used]
    for p in rng.sample(rest, round(flip * len(train))):
        other = rng.choice([c for c in classes if c != p.parent.name])
        moved = dst / "train" / other / p.name
        p.rename(moved)
        out.flipped.append(moved)
    return out


@dataclass
class PlantedBoxes:
    removed: list[tuple[str, list[float]]] = field(default_factory=list)  # (image name, box)
    shifted: list[tuple[str, list[float]]] = field(default_factory=list)  # (image name, new box)


def plant_boxes(src: Path, dst: Path, *, removed: int = 10, shifted: int = 10, seed: int = 0):
    """A copy of a VOC set with `removed` boxes deleted and `shifted` boxes moved by half their size."""
    shutil.copytree(src, dst)
    rng = random.Random(seed)
    ann_dir = next(d for d in (dst / "annotations", dst / "Annotations") if d.is_dir())
    xmls = sorted(ann_dir.glob("*.xml"))
    objects = []
    for x in xmls:
        for k, _ in enumerate(ET.parse(x).getroot().iter("object")):
            objects.append((x, k))
    chosen = rng.sample(objects, removed + shifted)
    out = PlantedBoxes()
    by_file: dict[Path, list[tuple[int, str]]] = {}
    for i, (x, k) in enumerate(chosen):
        by_file.setdefault(x, []).append((k, "remove" if i < removed else "shift"))
    for x, changes in by_file.items():
        tree = ET.parse(x)
        root = tree.getroot()
        objs = list(root.iter("object"))
        name = root.findtext("filename") or x.stem
        w = float(root.findtext("size/width") or 0)
        h = float(root.findtext("size/height") or 0)
        for k, what in sorted(changes, reverse=True):
            obj = objs[k]
            bb = obj.find("bndbox")
            box = [float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
            if what == "remove":
                root.remove(obj)
                out.removed.append((name, box))
                continue
            bw, bh = box[2] - box[0], box[3] - box[1]
            dx = rng.choice((-1, 1)) * 0.5 * bw
            dy = rng.choice((-1, 1)) * 0.5 * bh
            new = [
                min(max(box[0] + dx, 0), w - 2),
                min(max(box[1] + dy, 0), h - 2),
                min(max(box[2] + dx, 2), w),
                min(max(box[3] + dy, 2), h),
            ]
            for t, v in zip(("xmin", "ymin", "xmax", "ymax"), new, strict=True):
                bb.find(t).text = str(int(v))
            out.shifted.append((name, new))
        tree.write(x)
    return out


def digits_folders(
    dst: Path, *, flip: float = 0.1, seed: int = 0, side: int = 32, limit: int | None = None
) -> list[Path]:
    """scikit-learn's digits as PNG class folders (train/ and val/, upscaled to `side` px), with
    `flip` of the training images moved to another digit's folder; the moved files."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = random.Random(seed)
    order = list(range(len(d.target)))
    rng.shuffle(order)
    order = order[:limit]
    n_val = len(order) // 5
    flipped: list[Path] = []
    train = order[n_val:]
    to_flip = set(rng.sample(train, round(flip * len(train))))
    for k, i in enumerate(order):
        split = "val" if k < n_val else "train"
        label = int(d.target[i])
        if i in to_flip:
            label = rng.choice([c for c in range(10) if c != label])
        pixels = (d.images[i] * (255 / 16)).round().astype("uint8")
        img = Image.fromarray(pixels, mode="L").resize((side, side), Image.Resampling.NEAREST)
        path = dst / split / str(label) / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.convert("RGB").save(path)
        if i in to_flip:
            flipped.append(path)
    return flipped

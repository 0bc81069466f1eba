"""Small generated datasets for the doctor's tests: distinct photos-like images, planted defects."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter


def scene(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A distinct picture: a random two-colour gradient with a few random shapes, blurred a bit."""
    rng = random.Random(seed)
    w, h = size
    a = [rng.randrange(256) for _ in range(3)]
    b = [rng.randrange(256) for _ in range(3)]
    img = Image.new("RGB", size)
    px = img.load()
    for y in range(h):
        for x in range(w):
            t = (x + y) / (w + h)
            px[x, y] = tuple(int(a[k] * (1 - t) + b[k] * t) for k in range(3))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(3, 6)):
        x0, y0 = rng.randrange(w - 20), rng.randrange(h - 20)
        x1, y1 = x0 + rng.randint(10, w // 2), y0 + rng.randint(10, h // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    return img.filter(ImageFilter.GaussianBlur(1))


def near_copy(img: Image.Image, path: Path) -> None:
    w, h = img.size
    img.crop((4, 3, w - 4, h - 3)).resize((int(w * 0.6), int(h * 0.6))).save(path, quality=70)


@pytest.fixture
def planted_folders(tmp_path: Path) -> dict:
    """train/val class folders of 2 classes x 12 + 2 x 4 scenes, with 2 exact and 2 near copies
    of training images in val, and one exact copy inside train."""
    root = tmp_path / "pets"
    seed = 0
    files: dict[str, list[Path]] = {"train": [], "val": []}
    for split, n in (("train", 12), ("val", 4)):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                p = root / split / cls / f"{cls}{i}.jpg"
                scene(seed).save(p, quality=90)
                seed += 1
                files[split].append(p)
    train = files["train"]
    exact = [
        (train[0], root / "val" / "cat" / "copy0.jpg"),
        (train[13], root / "val" / "dog" / "copy1.jpg"),
    ]
    for src, dst in exact:
        shutil.copyfile(src, dst)
    near = [
        (train[1], root / "val" / "cat" / "near0.jpg"),
        (train[14], root / "val" / "dog" / "near1.jpg"),
    ]
    for src, dst in near:
        with Image.open(src) as img:
            near_copy(img.convert("RGB"), dst)
    inside = (train[2], root / "train" / "cat" / "again.jpg")
    shutil.copyfile(*inside)
    return {"root": root, "exact": exact, "near": near, "inside": inside}

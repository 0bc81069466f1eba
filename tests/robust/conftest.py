"""The tiny trained segmenter and detector the robustness tests attack, trained once per
session (the PGD and the Square tests share them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import recog


@pytest.fixture(scope="session")
def unet(tmp_path_factory):
    out = tmp_path_factory.mktemp("robust") / "unet"
    # float32 (`amp="off"`): the thresholds of the attack tests were set on this model, and
    # `--amp auto` would train it in bf16 on a CPU with AMX, a different model
    return recog.train("shapes:32:16", "unet", epochs=4, img_size=64, batch_size=8, amp="off",
                       out=str(out))  # fmt: skip


def _boxes_dataset(root: Path) -> Path:
    """One bright square per dark 64 px image, one class (YOLO layout): a detector from
    scratch learns it in a few hundred steps (yolo_n: mAP 0.84 after 40 epochs of 3),
    where the five textured shapes take thousands."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("val", 8)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            image = np.full((64, 64, 3), 30, np.uint8)
            side = int(rng.integers(20, 36))
            x, y = (int(v) for v in rng.integers(0, 64 - side, 2))
            image[y : y + side, x : x + side] = 230
            Image.fromarray(image).save(root / "images" / split / f"{i}.png")
            box = f"0 {(x + side / 2) / 64} {(y + side / 2) / 64} {side / 64} {side / 64}\n"
            (root / "labels" / split / f"{i}.txt").write_text(box)
    (root / "data.yaml").write_text("names: [box]\ntrain: images/train\nval: images/val\n")
    return root / "data.yaml"


@pytest.fixture(scope="session")
def yolo(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    data = _boxes_dataset(root / "boxes")
    return recog.train(str(data), "yolo_n", epochs=40, img_size=64, batch_size=8, lr=0.01,
                       patience=0, amp="off", out=str(root / "yolo"))  # fmt: skip

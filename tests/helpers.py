"""Shared test helpers: where the real datasets live, and how to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def shared_dataset(name: str) -> Path:
    """Path to ../shared/data/<name>, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(
            f"real dataset {name!r} not found at {path} (it lives in ../shared/data beside the repo)"
        )
    return path


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python -m recog ARGS` in a subprocess; returns the completed process (text output)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "recog", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


#: a run record's values where a test needs a whole record and says only what it is about
_RECORD = {
    "task": "classify", "classes": ["a", "b"], "model": "cnn", "weights": "none", "img_size": 32,
    "head_epochs": 0.0, "backbone_lr": 1.0, "epochs": 1, "steps": 1, "time": 0.0,
    "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "schedule": "cosine",
    "warmup_epochs": 0.0, "clip_grad": 0.0, "ema": 0.0, "patience": 0, "label_smoothing": 0.0,
    "class_weights": "none", "augment": "none", "hflip": 0.0, "min_scale": 1.0, "crop_pct": 1.0,
    "mosaic": 0.0, "mosaic_off_epochs": 0, "elastic": 0.0, "mean": [0.5] * 3, "std": [0.5] * 3,
}  # fmt: skip


def record(**values):
    """A whole run record (`recog.config.TrainConfig`) with `values` and plain others."""
    from recog.config import TrainConfig

    return TrainConfig.from_dict({**_RECORD, **values}, source="test")


def noise_class_folders(root: Path, *, side: int, n_train: int, n_val: int) -> Path:
    """A two-class (a, b) class-folder set of random `side` px images under `root/data`."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c in ("a", "b"):
            folder = root / "data" / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root / "data"

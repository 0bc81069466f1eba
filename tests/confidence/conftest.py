"""A tiny digits `cnn` run, trained once for the confidence tests (16 px, 1 epoch), and images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    import recog

    out = tmp_path_factory.mktemp("confidence") / "digits-cnn"
    rec = recog.train(
        "digits",
        "cnn",
        epochs=1,
        img_size=16,
        model_args={"width": 16},
        batch_size=64,
        out=str(out),
    )
    return rec.run_dir


@pytest.fixture(scope="session")
def noise_images(tmp_path_factory):
    """40 images of uniform noise: as far from handwritten digits as images get."""
    folder = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(
            folder / f"noise{i:02d}.png"
        )
    return folder


@pytest.fixture(scope="session")
def digit_images(tmp_path_factory):
    """The first 40 validation digits as PNG files."""
    from recog.data.formats.class_folders import list_splits

    folder = tmp_path_factory.mktemp("digit-files")
    _, val, _, _ = list_splits("digits", val_split=0.2, seed=0)
    for i, item in enumerate(val.items[:40]):
        Image.fromarray(item.permute(1, 2, 0).numpy()).save(folder / f"digit{i:02d}.png")
    return folder

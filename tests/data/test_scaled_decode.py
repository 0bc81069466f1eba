"""Scaled JPEG decoding for prediction: a photo is decoded at 1/2, 1/4 or 1/8 where the
task's `prepare` needs no more, and what `prepare` makes of it is the full decode's
within a few grey levels, with the same geometry (meta) as the whole image."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from recog.api.images import prepared
from recog.data.images import decoded_from_bytes, read_decoded, read_image
from recog.errors import RecogError
from recog.tasks.classify import ClassifyTask
from recog.tasks.detect import DetectTask


def _photo(width: int, height: int, *, orientation: int | None = None) -> bytes:
    """A smooth photo-like JPEG (gradients and blobs), optionally with an EXIF orientation."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack(
        [
            128 + 100 * np.sin(x / 37.0) * np.cos(y / 23.0),
            255 * x / width,
            128 + 90 * np.cos((x + y) / 51.0),
        ],
        axis=-1,
    )
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    img.save(buf, format="JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


def _classify() -> ClassifyTask:
    return ClassifyTask(["a", "b"], (0.5,) * 3, (0.25,) * 3, img_size=128)


def _detect() -> DetectTask:
    return DetectTask(["a"], (0.0,) * 3, (1.0,) * 3, img_size=160)


@pytest.mark.parametrize("make_task", [_classify, _detect], ids=["classify", "detect"])
def test_a_big_photo_is_decoded_smaller_and_prepared_as_the_whole_one(tmp_path, make_task):
    task = make_task()
    path = tmp_path / "photo.jpg"
    path.write_bytes(_photo(1200, 900))
    decoded = read_decoded(path, task.decode_size)
    assert decoded.full_size == (900, 1200)
    assert decoded.reduced
    h, w = decoded.pixels.shape[-2:]
    want_w, want_h = task.decode_size(1200, 900)
    assert want_w <= w < 1200 and want_h <= h < 900  # smaller, never below what prepare needs

    small, small_meta = prepared(path, task)
    whole, whole_meta = task.prepare(read_image(path))
    assert small_meta == whole_meta  # the same scale and original size: boxes map the same
    assert small.shape == whole.shape
    diff = (small.float() - whole.float()).abs()
    assert diff.mean() < 2.0 and diff.quantile(0.99) < 12  # a few grey levels, at most


def test_what_is_not_worth_scaling_is_decoded_whole(tmp_path):
    task = _detect()
    small_photo = tmp_path / "small.jpg"
    small_photo.write_bytes(_photo(300, 200))  # under twice the 160 px letterbox
    assert not read_decoded(small_photo, task.decode_size).reduced
    png = tmp_path / "big.png"
    Image.fromarray(np.zeros((900, 1200, 3), np.uint8)).save(png)  # only JPEG scales
    assert not read_decoded(png, task.decode_size).reduced
    big = tmp_path / "big.jpg"
    big.write_bytes(_photo(1200, 900))
    assert not read_decoded(big).reduced  # no size asked: every pixel
    assert (read_decoded(big).pixels == read_image(big)).all()


def test_the_exif_orientation_turns_the_full_size_too(tmp_path):
    task = _classify()
    path = tmp_path / "turned.jpg"
    path.write_bytes(_photo(1200, 900, orientation=6))  # stored landscape, shown portrait
    decoded = read_decoded(path, task.decode_size)
    assert decoded.reduced
    assert decoded.full_size == (1200, 900)
    assert decoded.pixels.shape[-2] > decoded.pixels.shape[-1]  # upright, as read_image
    assert read_image(path).shape[-2:] == (1200, 900)


def test_a_truncated_photo_is_still_an_error_naming_it(tmp_path):
    data = _photo(1200, 900)
    with pytest.raises(RecogError, match="cut.jpg: cannot decode image"):
        decoded_from_bytes(data[: len(data) // 2], "cut.jpg", _classify().decode_size)


def test_prepared_tensor_input_is_untouched():
    task = _classify()
    image = torch.randint(0, 255, (3, 300, 400), dtype=torch.uint8)
    out, meta = prepared(image, task)
    ref, ref_meta = task.prepare(image)
    assert (out == ref).all() and meta == ref_meta

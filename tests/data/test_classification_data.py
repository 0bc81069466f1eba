"""Classification data: layouts, splits, decoding of odd images, and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import shared_dataset
from PIL import Image

from recog.data import (
    batch_mix,
    check_dataset,
    find_images,
    load_classification,
    load_eval_dataset,
    read_image,
)
from recog.errors import RecogError


def _img(path: Path, colour=(200, 30, 60), size=(20, 16), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def _folders(root: Path, classes=("ants", "bees"), per_class=6) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            _img(root / name / f"{i}.png", colour=(40 * c + i, 100, 200 - 30 * c))
    return root


def test_train_val_layout(tmp_path):
    _folders(tmp_path / "train")
    _folders(tmp_path / "val", per_class=2)
    s = load_classification(str(tmp_path), img_size=16)
    assert s.class_names == ["ants", "bees"] and len(s.train) == 12 and len(s.val) == 4
    sample = s.train[0]
    assert sample.image.shape == (3, 16, 16) and sample.image.dtype == torch.uint8
    assert sample.orig_size == (16, 20)


@pytest.mark.parametrize("cache", ["on", "off"])
def test_samples_name_their_files(tmp_path, cache):
    _folders(tmp_path / "train")
    _folders(tmp_path / "val", per_class=2)
    s = load_classification(str(tmp_path), img_size=16, cache=cache)
    assert s.train[0].path == str(tmp_path / "train" / "ants" / "0.png")
    assert s.val[3].path == str(tmp_path / "val" / "bees" / "1.png")


def test_hidden_folders_and_files_are_ignored(tmp_path):
    _folders(tmp_path, per_class=5)
    _img(tmp_path / "ants" / ".ipynb_checkpoints" / "0-checkpoint.png")
    _img(tmp_path / "bees" / ".hidden.png")
    _img(tmp_path / ".cache" / "x.png")
    s = load_classification(str(tmp_path), img_size=16, cache="off")
    assert s.class_names == ["ants", "bees"] and len(s.train) + len(s.val) == 10
    assert len(find_images([str(tmp_path)])) == 10
    assert check_dataset(str(tmp_path))["splits"]["all"] == {"ants": 5, "bees": 5}


def test_given_class_names_fix_the_label_order(tmp_path):
    _folders(tmp_path, per_class=5)
    s = load_classification(str(tmp_path), img_size=16, class_names=["wasps", "bees", "ants"])
    assert s.class_names == ["wasps", "bees", "ants"]
    assert sorted(set(s.train_labels)) == [1, 2]
    assert all(int(x.target.labels) == (2 if "/ants/" in x.path else 1) for x in s.val)
    with pytest.raises(RecogError, match="class 'bees' is not one of the given classes"):
        load_classification(str(tmp_path), img_size=16, class_names=["ants", "wasps"])


def test_test_folder_serves_as_validation(tmp_path):
    _folders(tmp_path / "train")
    _folders(tmp_path / "test", per_class=1)
    assert len(load_classification(str(tmp_path), img_size=16).val) == 2


def test_class_folder_split_is_stratified_and_seeded(tmp_path):
    _folders(tmp_path, per_class=10)
    a = load_classification(str(tmp_path), img_size=16, val_split=0.3, seed=1, cache="off")
    b = load_classification(str(tmp_path), img_size=16, val_split=0.3, seed=1, cache="off")
    c = load_classification(str(tmp_path), img_size=16, val_split=0.3, seed=2, cache="off")
    assert a.val.items == b.val.items and a.val.items != c.val.items
    assert sorted(a.val.labels) == [0, 0, 0, 1, 1, 1]


def test_csv_list_and_bad_line(tmp_path):
    _folders(tmp_path / "imgs", per_class=5)
    lines = ["path,label"] + [f"imgs/{c}/{i}.png,{c}" for c in ("ants", "bees") for i in range(5)]
    (tmp_path / "list.csv").write_text("\n".join(lines))
    s = load_classification(str(tmp_path / "list.csv"), img_size=16)
    assert s.name == "list" and len(s.train) + len(s.val) == 10
    (tmp_path / "bad.csv").write_text("path,label\nimgs/ants/0.png,ants\njust-a-path\n")
    with pytest.raises(RecogError, match=r"bad.csv, line 3"):
        load_classification(str(tmp_path / "bad.csv"), img_size=16)


def test_digits_builtin():
    s = load_classification("digits", img_size=32, hflip=0.0, crop_pct=1.0)
    assert len(s.train) + len(s.val) == 1797 and s.class_names == [str(i) for i in range(10)]
    assert s.train[0].image.shape == (3, 32, 32) and s.train[0].orig_size == (8, 8)
    assert set(s.train.names) | set(s.val.names) == {f"digits[{i}]" for i in range(1797)}
    assert s.val[0].path == s.val.names[0]


def test_missing_path(tmp_path):
    with pytest.raises(RecogError, match="nowhere: no such file or directory"):
        load_classification(str(tmp_path / "nowhere"), img_size=16)


def test_empty_folder(tmp_path):
    with pytest.raises(RecogError, match="no class folders with images"):
        load_classification(str(tmp_path), img_size=16)


def test_single_class(tmp_path):
    _folders(tmp_path, classes=("only",))
    with pytest.raises(RecogError, match="needs at least 2 classes, found only 'only'"):
        load_classification(str(tmp_path), img_size=16)


@pytest.mark.parametrize("cache", ["on", "off"])
def test_corrupt_images_skipped_and_listed_or_fatal_with_strict(tmp_path, cache, capsys):
    _folders(tmp_path, per_class=5)
    good = (tmp_path / "ants" / "0.png").read_bytes()
    # noise, so that the cut falls in the scan data and not in the headers
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "bees" / "full.jpg", quality=95)
    jpeg = (tmp_path / "bees" / "full.jpg").read_bytes()
    (tmp_path / "bees" / "full.jpg").unlink()
    (tmp_path / "ants" / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "ants" / "zero.jpg").write_bytes(b"")
    (tmp_path / "bees" / "text.jpg").write_text("this is not a jpeg")
    (tmp_path / "bees" / "half.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "bees" / "notes.txt").write_text("ignored")
    (tmp_path / "ants" / ".DS_Store").write_bytes(b"\0\0")
    s = load_classification(str(tmp_path), img_size=16, cache=cache)
    skipped = {Path(p).name for p, _ in s.skipped}
    assert skipped == {"truncated.png", "zero.jpg", "text.jpg", "half.jpg"}
    assert len(s.train) + len(s.val) == 10
    assert "recog: warning: skipped" in capsys.readouterr().err
    with pytest.raises(RecogError, match=r"(truncated|zero|text|half).*--strict"):
        load_classification(str(tmp_path), img_size=16, cache=cache, strict=True)


def test_odd_image_modes_are_converted(tmp_path):
    grey = _img(tmp_path / "g.png", colour=77, mode="L")
    rgba = _img(tmp_path / "a.png", colour=(10, 20, 30, 0), mode="RGBA")
    cmyk = _img(tmp_path / "c.jpg", colour=(0, 255, 0, 0), mode="CMYK")
    pal = Image.new("P", (8, 8))
    pal.putpalette([0, 0, 0, 250, 5, 9] + [0] * 762)
    pal.paste(1, (0, 0, 8, 8))
    pal.save(tmp_path / "p.png")
    arr = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    Image.fromarray(arr).save(tmp_path / "i16.png")
    assert read_image(grey)[:, 0, 0].tolist() == [77, 77, 77]
    assert read_image(rgba)[:, 0, 0].tolist() == [10, 20, 30]
    assert read_image(cmyk)[:, 0, 0].tolist() == [255, 0, 255]
    assert read_image(tmp_path / "p.png")[:, 0, 0].tolist() == [250, 5, 9]
    sixteen = read_image(tmp_path / "i16.png")
    assert sixteen.dtype == torch.uint8 and sixteen.shape == (3, 8, 8)
    assert sixteen[0, 7, 7].item() == 63000 >> 8 and sixteen[0, 0, 1].item() == 1000 >> 8


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_exif_orientation_is_applied_as_the_server_does(tmp_path, suffix):
    """A phone photo stored landscape with orientation 6 (rotate 90 clockwise) reads upright."""
    from recog.serve.limits import Limits, decode_upload

    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (250, 0, 0)  # left half red, right half blue as stored
    stored[:, 20:] = (0, 0, 250)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / f"phone{suffix}"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    upright = read_image(path)
    assert upright.shape == (3, 40, 20)  # portrait after rotation
    assert upright[0, 5, 10] > 200 and upright[2, 35, 10] > 200  # red on top, blue below
    served = decode_upload(path.read_bytes(), Limits()).image
    assert (served.int() - upright.int()).abs().max() <= 2  # same pixels as the server sees


def test_find_images_files_folders_globs(tmp_path):
    _folders(tmp_path / "set", per_class=2)
    (tmp_path / "set" / "ants" / "readme.md").write_text("x")
    assert len(find_images([str(tmp_path / "set")])) == 4
    assert len(find_images([str(tmp_path / "set" / "*" / "0.png")])) == 2
    assert find_images([str(tmp_path / "set" / "ants" / "1.png")])[0].name == "1.png"
    with pytest.raises(RecogError, match="missing.jpg: no such file"):
        find_images([str(tmp_path / "missing.jpg")])
    with pytest.raises(RecogError, match="matches no image files"):
        find_images([str(tmp_path / "*.webp")])


def test_eval_dataset_rejects_unknown_class(tmp_path):
    _folders(tmp_path / "val", classes=("ants", "wasps"))
    with pytest.raises(RecogError, match="'wasps' is not one of the run's classes"):
        load_eval_dataset(str(tmp_path), class_names=["ants", "bees"], img_size=16, crop_pct=1.0)


def test_batch_mix_gives_soft_labels():
    mix = batch_mix(mixup=0.2, cutmix=1.0, num_classes=4)
    images, labels = mix(torch.rand(8, 3, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]))
    assert labels.shape == (8, 4)
    torch.testing.assert_close(labels.sum(1), torch.ones(8))
    assert batch_mix(mixup=0, cutmix=0, num_classes=4) is None


def test_check_reports_problems(tmp_path):
    _folders(tmp_path / "train")
    (tmp_path / "train" / "ants" / "bad.jpg").write_bytes(b"nope")
    (tmp_path / "train" / "bees" / "x.txt").write_text("x")
    report = check_dataset(str(tmp_path))
    assert report["splits"]["train"] == {"ants": 6, "bees": 6}
    assert report["ignored_files"] == 1 and len(report["corrupt"]) == 1
    assert any("bad.jpg" in p for p in report["problems"])


def test_real_hymenoptera_loads():
    root = shared_dataset("hymenoptera")
    s = load_classification(str(root), img_size=64, cache="off")
    assert s.class_names == ["ants", "bees"] and not s.skipped
    assert (len(s.train), len(s.val)) == (245, 153)
    assert Path(s.val[0].path).is_file()

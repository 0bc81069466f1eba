"""Symbolic links the user's file system presents inside a dataset folder are followed: a Hugging
Face snapshot (links into blobs/), a DVC cache checkout, a split made with `ln -s`; a loop, a
dangling link and a link to a pipe are one line naming it; text that names a way out stays
refused (test_untrusted_files.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recog.data.formats.class_folders import list_splits
from recog.errors import RecogError


def _photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path, format="PNG")
    return path


def _store(root: Path, count: int = 6) -> dict[str, list[Path]]:
    """Class photos in a content-addressed store (blob names are their sha256, no suffix)."""
    out: dict[str, list[Path]] = {"cat": [], "dog": []}
    for k, cls in enumerate(out):
        for i in range(count):
            tmp = _photo(root / "incoming" / f"{cls}{i}.png", seed=10 * k + i)
            blob = root / "blobs" / hashlib.sha256(tmp.read_bytes()).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(tmp, blob)
            out[cls].append(blob)
    return out


def _link(at: Path, target: Path) -> None:
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(os.path.relpath(target, at.parent))


def test_a_hugging_face_snapshot_of_links_into_blobs_is_read(tmp_path):
    blobs = _store(tmp_path / "hub" / "datasets--me--pets")
    snap = tmp_path / "hub" / "datasets--me--pets" / "snapshots" / "abc123"
    for cls, files in blobs.items():
        for i, blob in enumerate(files):
            _link(snap / cls / f"{i}.png", blob)
    train, val, names, _ = list_splits(str(snap), val_split=0.34, seed=0)
    assert names == ["cat", "dog"] and len(train.items) + len(val.items) == 12
    assert all(Path(p).is_symlink() for p in train.items)  # read through the links


def test_a_dvc_checkout_and_a_split_made_with_ln_s_are_read(tmp_path):
    blobs = _store(tmp_path / ".dvc-cache")
    data = tmp_path / "project" / "data"
    for cls, files in blobs.items():  # DVC's symlink cache: each file a link into the cache
        for i, blob in enumerate(files):
            _link(data / cls / f"{i}.png", blob)
    split = tmp_path / "split"
    for cls in blobs:  # a train/val split made of links to the files, not copies
        for i in range(6):
            _link(split / ("val" if i < 2 else "train") / cls / f"{i}.png", data / cls / f"{i}.png")
    train, val, names, _ = list_splits(str(split), val_split=0.2, seed=0)
    assert (len(train.items), len(val.items), names) == (8, 4, ["cat", "dog"])
    whole, _, _, _ = list_splits(str(data), val_split=0.5, seed=0)
    assert len(whole.items) == 6
    # a class folder that is itself a link to a folder elsewhere is walked too
    linked = tmp_path / "linked"
    (linked / "cat").mkdir(parents=True)
    for i, blob in enumerate(blobs["cat"]):
        _link(linked / "cat" / f"{i}.png", blob)
    (linked / "dog").symlink_to(data / "dog", target_is_directory=True)
    t, v, n, _ = list_splits(str(linked), val_split=0.5, seed=0)
    assert len(t.items) + len(v.items) == 12 and n == ["cat", "dog"]


def test_loops_dangling_links_and_pipes_are_one_line(tmp_path):
    root = tmp_path / "ds"
    for cls in ("a", "b"):
        for i in range(2):
            _photo(root / cls / f"{i}.png", seed=i)
    (root / "a" / "loop").symlink_to(root / "a", target_is_directory=True)
    with pytest.raises(RecogError, match=r"a/loop: a symbolic link to .*\(a loop\)"):
        list_splits(str(root), val_split=0.5, seed=0)
    (root / "a" / "loop").unlink()
    (root / "b" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(RecogError, match=r"b/gone.png: a symbolic link to .*dangling"):
        list_splits(str(root), val_split=0.5, seed=0)
    (root / "b" / "gone.png").unlink()
    os.mkfifo(tmp_path / "pipe")
    (root / "b" / "pipe.png").symlink_to(tmp_path / "pipe")
    with pytest.raises(RecogError, match=r"b/pipe.png: a symbolic link to .*not a regular file"):
        list_splits(str(root), val_split=0.5, seed=0)


def test_annotated_sets_follow_their_own_links(tmp_path):
    """A VOC image and a mask-folder image that are links to files elsewhere are read."""
    from recog.data.formats.masks import find_pairs
    from recog.data.formats.voc import read_voc

    elsewhere = _photo(tmp_path / "elsewhere" / "photo.png", seed=1)
    voc = tmp_path / "voc"
    _link(voc / "images" / "0.png", elsewhere)
    (voc / "annotations").mkdir(parents=True)
    (voc / "annotations" / "0.xml").write_text(
        "<annotation><filename>0.png</filename><size><width>16</width><height>16</height>"
        "</size><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>"
        "<ymax>9</ymax></bndbox></object></annotation>"
    )
    ann = read_voc(voc)
    assert [r.path.name for r in ann.records] == ["0.png"] and ann.num_boxes == 1
    masks = tmp_path / "masks"
    _link(masks / "images" / "0.png", elsewhere)
    (masks / "masks").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(masks / "masks" / "0.png")
    pairs, _ = find_pairs(masks)
    assert len(pairs) == 1

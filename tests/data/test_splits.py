"""The one seeded split: pinned results (the same as before it was one), and every loader's use."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from recog.data.formats.masks import split_pairs
from recog.data.splits import seeded_split, split_records

# Results of the three copies this split replaced (detection's seeded_split, the
# classification folders' stratified_split, the mask folders' split), for these inputs.
PINNED = [
    ((10, 0.2, 0, None), ([0, 2, 3, 5, 6, 7, 8, 9], [1, 4])),
    ((7, 0.3, 5, None), ([2, 3, 4, 5, 6], [0, 1])),
    ((10, 0.3, 1, [0, 0, 0, 1, 1, 1, 1, 2, 3, 3]), ([0, 2, 4, 5, 6, 7, 8], [1, 3, 9])),
]


@pytest.mark.parametrize(("args", "expected"), PINNED)
def test_split_is_pinned(args, expected):
    n, val_split, seed, labels = args
    assert seeded_split(n, val_split, seed, labels=labels) == expected


def test_stratified_split_of_fifty_is_pinned():
    labels = [i % 10 for i in range(50)]
    _, val = seeded_split(50, 0.2, 0, labels=labels)
    assert val == [13, 14, 15, 22, 29, 31, 38, 40, 46, 47]
    assert sorted(labels[i] for i in val) == list(range(10))  # one of each class


def test_plain_split_keeps_one_for_validation_and_stratified_keeps_singletons_in_train():
    assert seeded_split(3, 0.01, 0) == ([0, 1], [2])
    train, val = seeded_split(3, 0.6, 0, labels=[0, 1, 1])
    assert 0 in train and len(val) == 1


class _Rec:
    def __init__(self, split: str) -> None:
        self.split = split


def test_split_records_keeps_the_sources_split_else_seeds_one():
    given = [_Rec("train"), _Rec("val"), _Rec("train")]
    assert split_records(given, val_split=0.5, seed=0) == ([given[0], given[2]], [given[1]])
    plain = [_Rec("") for _ in range(10)]
    train, val = split_records(plain, val_split=0.2, seed=0)
    assert val == [plain[1], plain[4]] and len(train) == 8


def test_mask_folder_split_is_the_seeded_split(tmp_path: Path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(10):
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / f"{i}.png")
        Image.new("L", (8, 8)).save(tmp_path / "masks" / f"{i}.png")
    train, val, _ = split_pairs(tmp_path, val_split=0.2, seed=0)
    assert [p.image.stem for p in val] == ["1", "4"]
    assert len(train) == 8

"""Grouped splits (`--group-by`): no group on both sides, about the fraction of images asked for,
the same split for the same seed, the classes val cannot measure named, and every value the
user gave used or refused in one line."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from recog.data.formats.class_folders import list_splits
from recog.data.groups import GroupRule, grouped_split
from recog.errors import RecogError


def _sessions(n_groups: int = 12, per: int = 10) -> tuple[list[str], list[int]]:
    groups = [f"s{g:02d}" for g in range(n_groups) for _ in range(per)]
    labels = [g % 3 for g in range(n_groups) for _ in range(per)]
    return groups, labels


def test_groups_stay_whole_and_val_holds_about_the_fraction():
    groups, labels = _sessions()
    split = grouped_split(groups, labels, ["a", "b", "c"], val_split=0.25, seed=0, rule="s")
    train_groups = {groups[i] for i in split.train}
    val_groups = {groups[i] for i in split.val}
    assert not train_groups & val_groups
    assert sorted(split.train + split.val) == list(range(len(groups)))
    assert abs(len(split.val) - 30) <= 5  # 25% of 120 images, in whole groups of 10
    assert "9 groups / 90 images in train, 3 groups / 30 images in val" in split.note
    again = grouped_split(groups, labels, ["a", "b", "c"], val_split=0.25, seed=0, rule="s")
    other = grouped_split(groups, labels, ["a", "b", "c"], val_split=0.25, seed=1, rule="s")
    assert again == split and other.val != split.val


def test_a_class_living_in_one_group_stays_in_train_and_is_named():
    groups, labels = _sessions()
    groups += ["lonely"] * 7
    labels += [3] * 7
    names = ["a", "b", "c", "rare"]
    for seed in range(5):
        split = grouped_split(groups, labels, names, val_split=0.3, seed=seed, rule="g")
        assert all(labels[i] != 3 for i in split.val)
        assert "not in val, so not measured: rare (each lives in one group)" in split.note


def test_one_group_is_nothing_to_split():
    with pytest.raises(RecogError, match="all 5 images are in one group"):
        grouped_split(["x"] * 5, [0, 1, 0, 1, 0], ["a", "b"], val_split=0.2, seed=0, rule="r")


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "empty"), ("(", "not a regular expression"), ("frame(?:\\d+)", "needs a (group)")],
)
def test_bad_rules_are_one_line(text, problem):
    with pytest.raises(RecogError, match=problem.replace("(", "\\(").replace(")", "\\)")):
        GroupRule.parse(text)


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(path)


def _bees_like(root, sessions: int = 8, per: int = 6):
    """A CSV with path,label and metadata columns, frames of one session sharing a label."""
    rows = []
    for s in range(sessions):
        for f in range(per):
            name = f"{s:03d}_{f:03d}.png"
            _png(root / "images" / name)
            rows.append({"path": f"images/{name}", "label": "ab"[s % 2],
                         "date": f"8/{s // 2 + 1}/18", "location": "XY"[s % 2], "health": "ok"})  # fmt: skip
    csv_path = root / "bees.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return csv_path


def test_a_metadata_csv_splits_by_its_columns_and_by_a_file_name_pattern(tmp_path):
    csv_path = _bees_like(tmp_path)
    train, val, names, _ = list_splits(str(csv_path), val_split=0.25, seed=0, group_by="date,location")
    assert names == ["a", "b"]
    assert "grouped by date,location" in train.note

    def sessions(listing):
        return {p.name[:3] for p in listing.items}

    assert not sessions(train) & sessions(val) and sessions(val)
    by_name, val_by_name, _, _ = list_splits(str(csv_path), val_split=0.25, seed=0, group_by=r"^(\d+)_")
    assert not sessions(by_name) & sessions(val_by_name)
    # without --group-by the same CSV splits image by image, as before
    plain, plain_val, _, _ = list_splits(str(csv_path), val_split=0.25, seed=0)
    assert plain.note == "" and sessions(plain) & sessions(plain_val)


def test_class_folders_split_by_a_pattern(tmp_path):
    for cls in ("ants", "bees"):
        for s in range(5):
            for f in range(4):
                _png(tmp_path / cls / f"{cls}{s}_{f}.png")
    train, val, _, _ = list_splits(str(tmp_path), val_split=0.2, seed=0, group_by=r"^(\w+?)_")
    stems = Counter(p.name.split("_")[0] for p in val.items)
    assert stems and all(n == 4 for n in stems.values())  # whole sessions in val
    assert not {p.name.split("_")[0] for p in train.items} & set(stems)


def test_what_the_user_named_is_used_or_refused(tmp_path):
    csv_path = _bees_like(tmp_path)
    with pytest.raises(RecogError, match="column 'hive' is not in its table .*date, health"):
        list_splits(str(csv_path), val_split=0.2, seed=0, group_by="date,hive")
    with pytest.raises(RecogError, match="does not match its file name"):
        list_splits(str(csv_path), val_split=0.2, seed=0, group_by=r"^frame(\d+)")
    with pytest.raises(RecogError, match="has no sessions"):
        list_splits("digits", val_split=0.2, seed=0, group_by=r"(\d)")
    (tmp_path / "plain").mkdir()
    for cls in ("a", "b"):
        _png(tmp_path / "plain" / cls / "x_1.png")
        _png(tmp_path / "plain" / cls / "y_1.png")
    with pytest.raises(RecogError, match="no metadata table"):
        list_splits(str(tmp_path / "plain"), val_split=0.5, seed=0, group_by="date")


def test_detection_records_split_by_file_name_and_data_split_writes_it(tmp_path, capsys):
    from recog.cli import main
    from recog.data.formats.records import DetectionAnnotations, DetectionRecord
    from recog.data.formats.voc import write_voc

    import torch

    records = []
    for s in range(6):
        for f in range(3):
            path = tmp_path / "src" / "images" / f"cam{s}_{f}.png"
            _png(path)
            records.append(DetectionRecord(path, 8, 8, torch.tensor([[1.0, 1, 6, 6]]),
                                           torch.tensor([0]), ""))  # fmt: skip
    write_voc(DetectionAnnotations(records, ["thing"], []), tmp_path / "voc")
    out = tmp_path / "split"
    code = main(["data", "split", str(tmp_path / "voc"), str(out), "--group-by", r"^(cam\d)_"])
    assert code == 0, capsys.readouterr().err
    assert "grouped by ^(cam\\d)_" in capsys.readouterr().out
    train = {p.name.split("_")[0] for p in (out / "images" / "train").iterdir()}
    val = {p.name.split("_")[0] for p in (out / "images" / "val").iterdir()}
    assert train and val and not train & val


def test_the_doctor_names_a_metadata_column_that_gives_the_label_away(tmp_path):
    from pathlib import Path

    from recog.data.inventory import Entry
    from recog.doctor.metadata import metadata_leaks

    def entries(split_of):
        out = []
        for s in range(10):  # ten sessions, each one class; a "health" column that is noise
            for f in range(6):
                meta = {"path": f"{s}_{f}.png", "label": "ab"[s % 2], "session": f"s{s}",
                        "health": "ok" if f % 2 else "bad"}  # fmt: skip
                out.append(Entry(Path(meta["path"]), split_of(s, f), label=s % 2, meta=meta))
        return out

    random = entries(lambda s, f: "val" if f == 0 else "train")  # frames of a session split
    grouped = entries(lambda s, f: "val" if s >= 8 else "train")  # sessions whole
    leaks = metadata_leaks(random, ["a", "b"])
    assert [m["column"] for m in leaks] == ["session"]
    assert leaks[0]["lookup_accuracy"] == 1.0 and leaks[0]["val_seen"] == 1.0
    assert "--group-by session" in leaks[0]["effect"]
    assert metadata_leaks(grouped, ["a", "b"]) == []  # no val session was seen in train

"""The annotation checks: boxes (degenerate, out of bounds, drawn twice, none), masks, imbalance."""

from __future__ import annotations

from collections import Counter

import numpy as np
from conftest import scene
from PIL import Image

from recog.data.hygiene import detection_findings, segmentation_findings
from recog.doctor.facet import DOCTOR
from recog.types import TaskName


def _xml(name: str, w: int, h: int, objects: list[tuple[str, tuple[int, int, int, int]]]) -> str:
    objs = "".join(
        f"<object><name>{c}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for c, b in objects
    )
    return (
        f"<annotation><filename>{name}</filename><size><width>{w}</width>"
        f"<height>{h}</height><depth>3</depth></size>{objs}</annotation>"
    )


def _voc_set(tmp_path):
    root = tmp_path / "voc"
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    good = ("cat", (10, 10, 60, 60))
    objects = {
        "twice": [good, ("cat", (11, 10, 60, 61)), ("dog", (70, 20, 120, 90))],
        "thin": [good, ("dog", (80, 30, 80, 90))],  # one pixel wide (VOC is inclusive)
        "outside": [good, ("dog", (100, 50, 200, 110))],  # past the 160 px wide image
        "empty": [],
    }
    for i in range(8):
        objects[f"plain{i}"] = [good, ("dog", (70, 20, 120, 90))]
    for k, (name, objs) in enumerate(objects.items()):
        scene(k).save(root / "images" / f"{name}.jpg")
        (root / "annotations" / f"{name}.xml").write_text(_xml(f"{name}.jpg", 160, 120, objs))
    return root


def test_box_problems_are_found_each_once(tmp_path):
    root = _voc_set(tmp_path)
    inv = DOCTOR.of(TaskName.DETECT).inventory(str(root), val_split=0.2, seed=0)
    found = detection_findings(inv)
    kinds = Counter(f.kind for f in found)
    assert kinds == Counter(
        {"box-duplicate": 1, "box-degenerate": 1, "box-out-of-bounds": 1, "unannotated": 1}
    )
    by = {f.kind: f for f in found}
    assert by["box-duplicate"].files[0].endswith("twice.jpg")
    assert by["box-duplicate"].score > 0.9
    assert by["unannotated"].files[0].endswith("empty.jpg")
    assert "outside" in by["box-out-of-bounds"].message


def _mask_set(root, masks: dict[str, np.ndarray], classes: str | None = None):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k, (name, mask) in enumerate(masks.items()):
        scene(k, (mask.shape[1], mask.shape[0])).save(root / "images" / f"{name}.png")
        Image.fromarray(mask.astype(np.uint8), mode="L").save(root / "masks" / f"{name}.png")
    if classes:
        (root / "classes.txt").write_text("\n".join(classes.split(",")) + "\n")


def test_mask_problems_are_found(tmp_path):
    base = np.zeros((40, 48), dtype=np.uint8)
    masks = {}
    for i in range(6):
        m = base.copy()
        m[5:20, 5 + i : 25 + i] = 1
        m[25:35, 30:40] = 2
        masks[f"ok{i}"] = m
    stray = masks["ok0"].copy()
    stray[0, 0] = 7  # no class 7 among background, a, b
    masks["stray"] = stray
    masks["blank"] = base.copy()
    root = tmp_path / "masks"
    _mask_set(root, masks, classes="background,a,b")
    inv = DOCTOR.of(TaskName.SEGMENT).inventory(str(root), val_split=0.25, seed=0)
    found = segmentation_findings(inv)
    kinds = Counter(f.kind for f in found)
    assert kinds == Counter({"mask-values": 1, "unannotated": 1})
    by = {f.kind: f for f in found}
    assert by["mask-values"].files[0].endswith("stray.png") and by["mask-values"].detail[
        "values"
    ] == [7]
    assert by["unannotated"].files[0].endswith("blank.png")


def test_a_rare_class_is_reported_with_its_ratio(tmp_path):
    masks = {}
    for i in range(5):
        m = np.zeros((40, 40), dtype=np.uint8)
        m[:30, :30] = 1
        m[0, 0] = 2 if i == 0 else 1  # class b: one pixel in all
        masks[f"m{i}"] = m
    root = tmp_path / "rare"
    _mask_set(root, masks, classes="background,a,b")
    inv = DOCTOR.of(TaskName.SEGMENT).inventory(str(root), val_split=0.2, seed=0)
    rare = [f for f in segmentation_findings(inv) if f.kind == "class-imbalance"]
    assert len(rare) == 1 and rare[0].detail["class"] == "b" and rare[0].detail["count"] == 1


def test_the_cleaned_copy_of_a_voc_set_reads_back_without_the_doubled_box(tmp_path):
    from recog.doctor import diagnose

    root = _voc_set(tmp_path)
    d = diagnose(str(root), out=tmp_path / "report", fix=tmp_path / "clean")
    assert "needs --run" in " ".join(d.result["checks"])  # no run: no box-error check
    copy = DOCTOR.of(TaskName.DETECT).inventory(str(tmp_path / "clean"), val_split=0.2, seed=0)
    boxes = {e.path.name: e.boxes.shape[0] for e in copy.entries}
    assert boxes["twice.jpg"] == 2 and boxes["plain0.jpg"] == 2 and len(boxes) == 12
    assert d.result["fix"]["dropped_boxes"] == 1
    original = DOCTOR.of(TaskName.DETECT).inventory(str(root), val_split=0.2, seed=0)
    assert {e.path.name: e.boxes.shape[0] for e in original.entries}["twice.jpg"] == 3

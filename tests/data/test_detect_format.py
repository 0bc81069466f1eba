"""`detect_format`: what a path holds, as each caller asks it, and the task `infer_task` draws."""

from __future__ import annotations

from pathlib import Path

import pytest

from recog.data.formats import TASK_FORMATS, DataFormat, detect_format, infer_task
from recog.errors import RecogError
from recog.types import TaskName


def _tree(root: Path, *names: str) -> Path:
    for name in names:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("names: [a, b]\n" if name.endswith(".yaml") else "<annotation/>")
    return root


@pytest.mark.parametrize(
    ("names", "fmt", "task"),
    [
        (("images/", "masks/"), DataFormat.MASK_FOLDERS, TaskName.SEGMENT),
        (("train/images/", "train/masks/"), DataFormat.MASK_FOLDERS, TaskName.SEGMENT),
        (("data.yaml", "labels/", "images/"), DataFormat.YOLO, TaskName.DETECT),
        (("Annotations/a.xml", "JPEGImages/"), DataFormat.VOC, TaskName.DETECT),
        (("cats/", "dogs/"), DataFormat.CLASS_FOLDERS, TaskName.CLASSIFY),
    ],
)
def test_folders(tmp_path, names, fmt, task):
    root = _tree(tmp_path / "d", *names)
    assert detect_format(root) is fmt
    assert infer_task(str(root)) is task


def test_names_and_files(tmp_path):
    assert detect_format("digits") is DataFormat.DIGITS
    assert detect_format("shapes:10:5") is DataFormat.SHAPES
    assert infer_task("shapes") is TaskName.DETECT
    assert detect_format(tmp_path / "missing.json") is DataFormat.COCO
    assert infer_task(str(tmp_path / "missing.json")) is TaskName.DETECT
    (tmp_path / "list.csv").write_text("a.png,cat\n")
    assert detect_format(tmp_path / "list.csv") is DataFormat.CLASS_CSV
    assert detect_format(tmp_path / "nothing") is None
    assert infer_task(str(tmp_path / "nothing")) is TaskName.CLASSIFY


def test_each_caller_keeps_its_order(tmp_path):
    # a mask folder that is a YOLO folder too: a mask folder to inference, YOLO to detection
    root = _tree(tmp_path / "d", "images/", "masks/", "labels/", "data.yaml")
    assert infer_task(str(root)) is TaskName.SEGMENT
    detection = (DataFormat.COCO, DataFormat.YOLO, DataFormat.VOC)
    assert detect_format(root, among=detection) is DataFormat.YOLO
    # class folders named like annotation folders are class folders to classification
    assert detect_format(root, among=TASK_FORMATS[TaskName.CLASSIFY]) is DataFormat.CLASS_FOLDERS


def test_kept_quirks_of_infer_task(tmp_path):
    yaml_file = _tree(tmp_path, "set.yaml") / "set.yaml"
    assert detect_format(yaml_file) is DataFormat.YOLO
    assert infer_task(str(yaml_file)) is TaskName.CLASSIFY  # as before detect_format
    upper = tmp_path / "a.JSON"
    upper.write_text("{}")
    assert detect_format(upper) is DataFormat.COCO
    assert infer_task(str(upper)) is TaskName.CLASSIFY  # as before detect_format


def test_broken_or_ambiguous_detection_folders(tmp_path):
    both = _tree(tmp_path / "both", "data.yaml", "labels/", "annotations/a.xml")
    with pytest.raises(RecogError, match="both a YOLO data.yaml"):
        detect_format(both)
    labels_only = _tree(tmp_path / "labels_only", "labels/", "images/")
    with pytest.raises(RecogError, match="not a detection dataset"):
        infer_task(str(labels_only))

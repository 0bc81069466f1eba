"""Detection annotation formats: COCO, YOLO and VOC readers, writers, autodetection and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import shared_dataset
from PIL import Image

from recog.data.formats.coco import read_coco, write_coco
from recog.data.formats.convert import convert_detection
from recog.data.formats.detection import detection_format, read_detection, write_detection
from recog.data.formats.records import DetectionAnnotations, DetectionRecord
from recog.data.formats.voc import read_voc, write_voc
from recog.data.formats.yolo import read_yolo, write_yolo
from recog.errors import RecogError

CLASSES = ["cat", "dog", "bird"]


def _image(path: Path, width: int = 64, height: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (120, 30, 200)).save(path)
    return path


def _voc_xml(
    filename: str, objects: list[tuple[str, tuple]], *, size: tuple[int, int] = (64, 48)
) -> str:
    objs = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b in objects
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>"
    )


def _voc(root: Path, files: dict[str, list[tuple[str, tuple]]], *, images: bool = True) -> Path:
    (root / "annotations").mkdir(parents=True)
    for name, objects in files.items():
        if images:
            _image(root / "images" / name)
        (root / "annotations" / f"{Path(name).stem}.xml").write_text(_voc_xml(name, objects))
    return root


def _coco(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _yolo(root: Path, labels: dict[str, str], *, names: object = ("cat", "dog", "bird")) -> Path:
    names = list(names) if isinstance(names, tuple) else names
    (root / "data.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(json.dumps({"names": names}))  # JSON is YAML
    for name, text in labels.items():
        _image(root / "images" / name)
        label = (root / "labels" / name).with_suffix(".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(text)
    return root


def _synthetic(tmp_path: Path) -> DetectionAnnotations:
    """3 classes over 3 images, one of them a negative; boxes with integer and fractional edges."""
    boxes = {
        "a.png": ([[0, 0, 64, 48], [10.5, 4.25, 30, 20]], [0, 2]),
        "b.png": ([[5, 6, 7, 9], [1, 2, 63, 47], [20, 20, 40.125, 30]], [1, 1, 2]),
        "empty.png": ([], []),
    }
    records = [
        DetectionRecord(
            path=_image(tmp_path / "src" / name),
            width=64,
            height=48,
            boxes=torch.tensor(b, dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(lab, dtype=torch.int64),
        )
        for name, (b, lab) in boxes.items()
    ]
    return DetectionAnnotations(records, list(CLASSES), [])


def _by_name(ann: DetectionAnnotations) -> dict[str, DetectionRecord]:
    return {r.path.name: r for r in ann.records}


def _assert_same(a: DetectionAnnotations, b: DetectionAnnotations, *, atol: float) -> None:
    assert b.class_names == a.class_names
    left, right = _by_name(a), _by_name(b)
    assert left.keys() == right.keys()
    for name, ra in left.items():
        rb = right[name]
        assert (rb.width, rb.height) == (ra.width, ra.height), name
        assert torch.equal(rb.labels, ra.labels), name
        assert rb.boxes.shape == ra.boxes.shape, name
        torch.testing.assert_close(rb.boxes, ra.boxes, atol=atol, rtol=0, msg=name)


# --- the real raccoon set -------------------------------------------------------------------


def test_raccoon_read_voc() -> None:
    ann = read_voc(shared_dataset("raccoon"))
    assert len(ann.records) == 200
    assert ann.num_boxes == 217
    assert ann.class_names == ["raccoon"]
    assert ann.warnings == []
    for r in ann.records:
        assert r.boxes.dtype == torch.float32 and r.labels.dtype == torch.int64
        assert (r.boxes[:, 2:] > r.boxes[:, :2]).all()
        assert (r.boxes[:, 2] <= r.width).all() and (r.boxes[:, 3] <= r.height).all()


def test_raccoon_round_trip_voc_coco_yolo_coco(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    root = shared_dataset("raccoon")
    voc = read_detection(root)
    coco_json = convert_detection(root, to="coco", out=tmp_path / "coco1" / "train.json")
    coco = COCO(str(coco_json))  # proves the file is valid COCO
    assert len(coco.getImgIds()) == 200 and len(coco.getAnnIds()) == 217
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["raccoon"]
    assert detection_format(coco_json) == "coco"

    yolo_dir = convert_detection(coco_json, to="yolo", out=tmp_path / "yolo")
    assert detection_format(yolo_dir) == "yolo"
    coco2 = convert_detection(yolo_dir, to="coco", out=tmp_path / "coco2")
    back = read_detection(coco2)
    assert back.warnings == []
    assert len(back.records) == 200 and back.num_boxes == 217
    _assert_same(voc, back, atol=0.5)


# --- synthetic round trips ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_synthetic_round_trip(tmp_path: Path, fmt: str) -> None:
    ann = _synthetic(tmp_path)
    out = write_detection(ann, tmp_path / fmt, fmt=fmt)
    assert detection_format(out) == fmt
    back = read_detection(out, class_names=CLASSES)
    assert back.warnings == []
    # VOC and COCO keep 0.001 px; YOLO keeps 1e-6 of the 64 px side.
    _assert_same(ann, back, atol=1e-3)
    assert _by_name(back)["empty.png"].boxes.shape == (0, 4)


def test_synthetic_through_all_three(tmp_path: Path) -> None:
    ann = _synthetic(tmp_path)
    voc = write_voc(ann, tmp_path / "voc")
    coco = convert_detection(voc, to="coco", out=tmp_path / "c.json", class_names=CLASSES)
    yolo = convert_detection(coco, to="yolo", out=tmp_path / "yolo")
    back = read_yolo(yolo)
    _assert_same(ann, back, atol=1e-3)
    assert [r.path.name for r in read_coco(coco).records] == ["a.png", "b.png", "empty.png"]


def test_voc_one_based_convention_round_trips_exactly(tmp_path: Path) -> None:
    root = _voc(tmp_path / "in", {"a.png": [("cat", (1, 1, 64, 48)), ("dog", (11.5, 3, 20, 9.25))]})
    ann = read_voc(root)
    assert ann.records[0].boxes.tolist() == [[0, 0, 64, 48], [10.5, 2, 20, 9.25]]
    out = write_voc(ann, tmp_path / "out")
    xml = (out / "Annotations" / "a.xml").read_text()
    assert "<xmin>1</xmin>" in xml and "<xmax>64</xmax>" in xml and "<xmin>11.5</xmin>" in xml
    assert torch.equal(read_voc(out).records[0].boxes, ann.records[0].boxes)


def test_coco_category_ids_crowd_and_negatives(tmp_path: Path) -> None:
    _image(tmp_path / "imgs" / "x.png")
    _image(tmp_path / "imgs" / "neg.png")
    path = _coco(
        tmp_path / "ann" / "instances.json",
        {
            "images": [
                {"id": 10, "file_name": "x.png", "width": 64, "height": 48},
                {"id": 11, "file_name": "neg.png"},
            ],
            "categories": [{"id": 12, "name": "z"}, {"id": 3, "name": "a"}, {"id": 7, "name": "m"}],
            "annotations": [
                {"id": 1, "image_id": 10, "category_id": 12, "bbox": [1, 2, 3, 4]},
                {"id": 2, "image_id": 10, "category_id": 3, "bbox": [0, 0, 10, 10], "iscrowd": 1},
                {"id": 3, "image_id": 10, "category_id": 7, "bbox": [5, 5, 10, 10]},
            ],
        },
    )
    ann = read_coco(path, image_root=tmp_path / "imgs")
    assert ann.class_names == ["a", "m", "z"]
    x, neg = ann.records
    assert x.labels.tolist() == [2, 1]
    assert x.boxes.tolist() == [[1, 2, 4, 6], [5, 5, 15, 15]]
    assert neg.boxes.shape == (0, 4) and (neg.width, neg.height) == (64, 48)
    assert any("1 crowd annotation" in w for w in ann.warnings)

    out = write_coco(ann, tmp_path / "out" / "c.json", image_root=tmp_path)
    assert json.loads(out.read_text())["images"][0]["file_name"] == "imgs/x.png"
    _assert_same(ann, read_coco(out, image_root=tmp_path), atol=0)


def test_yolo_splits_dict_names_polygons_and_orphans(tmp_path: Path) -> None:
    root = _yolo(
        tmp_path / "ds",
        {"train/a.png": "0 0.5 0.5 0.5 0.5\n\n2 0.1 0.1 0.3 0.1 0.3 0.4\n", "val/b.png": ""},
        names={0: "cat", 1: "dog", 2: "bird"},
    )
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n  2: bird\n"
    )
    _image(root / "images" / "val" / "nolabel.png")
    (root / "labels" / "train" / "ghost.txt").write_text("1 0.5 0.5 0.1 0.1\n")
    ann = read_yolo(root)
    assert ann.class_names == CLASSES
    a, b, nolabel = ann.records
    assert a.labels.tolist() == [0, 2]
    torch.testing.assert_close(a.boxes, torch.tensor([[16, 12, 48, 36], [6.4, 4.8, 19.2, 19.2]]))
    assert b.boxes.shape == (0, 4) and nolabel.boxes.shape == (0, 4)
    assert any("ghost.txt" in w and "no image" in w for w in ann.warnings)

    out = write_yolo(ann, tmp_path / "out")
    assert (out / "labels" / "train" / "a.txt").is_file() and (
        out / "images" / "val" / "b.png"
    ).exists()
    assert "train: images/train" in (out / "data.yaml").read_text()
    _assert_same(ann, read_yolo(out), atol=1e-3)


def test_read_detection_class_names_reorders_and_checks(tmp_path: Path) -> None:
    root = _yolo(tmp_path / "ds", {"a.png": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n"})
    ann = read_detection(root, class_names=["dog", "cat", "bird", "fish"])
    assert ann.records[0].labels.tolist() == [1, 0]
    with pytest.raises(RecogError, match=r"\['cat'\] are not in the given class names"):
        read_detection(root, class_names=["dog"])


# --- bad input ------------------------------------------------------------------------------


def test_malformed_xml_names_file_and_line(tmp_path: Path) -> None:
    root = _voc(tmp_path, {"a.png": [("cat", (1, 1, 5, 5))]})
    (root / "annotations" / "a.xml").write_text(
        "<annotation>\n<filename>a.png</filename>\n<size>\n"
    )
    with pytest.raises(RecogError, match=r"a\.xml: malformed XML .*line 4"):
        read_voc(root)


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "images": [],\n  "categories": [}\n')
    with pytest.raises(RecogError, match=r"bad\.json: malformed JSON at line 3"):
        read_detection(path)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    root = _yolo(tmp_path, {"a.png": ""})
    (root / "data.yaml").write_text("names: [cat\nval: x: y\n")
    with pytest.raises(RecogError, match=r"data\.yaml: malformed YAML at line"):
        read_yolo(root)


def test_missing_image_is_skipped_with_a_warning_and_all_missing_is_an_error(
    tmp_path: Path,
) -> None:
    root = _voc(
        tmp_path / "some", {"a.png": [("cat", (1, 1, 5, 5))], "b.png": [("dog", (1, 1, 5, 5))]}
    )
    (root / "images" / "b.png").unlink()
    ann = read_voc(root)
    assert [r.path.name for r in ann.records] == ["a.png"]
    assert len(ann.warnings) == 1 and "b.xml" in ann.warnings[0] and "b.png" in ann.warnings[0]

    none = _voc(tmp_path / "none", {"a.png": [("cat", (1, 1, 5, 5))]}, images=False)
    with pytest.raises(RecogError, match="none of the annotated images were found"):
        read_voc(none)


def test_coco_missing_image_warns_naming_both(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    path = _coco(
        tmp_path / "c.json",
        {
            "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "gone.png"}],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"id": 5, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]}],
        },
    )
    ann = read_coco(path)
    assert len(ann.records) == 1
    assert any("c.json" in w and "gone.png" in w and "1 annotation" in w for w in ann.warnings)


def test_boxes_outside_are_clipped_and_empty_ones_dropped(tmp_path: Path) -> None:
    objects = [
        ("cat", (-5, 1, 10, 10)),  # partly outside: clipped
        ("cat", (50, 40, 80, 60)),  # partly outside: clipped
        ("dog", (9, 1, 5, 10)),  # xmax < xmin: dropped
        ("dog", (100, 100, 120, 120)),  # wholly outside: dropped
        ("cat", (3, 3, 3, 3)),  # one pixel in VOC's 1-based convention: kept
    ]
    ann = read_voc(_voc(tmp_path, {"a.png": objects}))
    record = ann.records[0]
    assert record.boxes.tolist() == [[0, 0, 10, 10], [49, 39, 64, 48], [2, 2, 3, 3]]
    assert record.labels.tolist() == [0, 0, 0]
    assert ann.class_names == ["cat", "dog"]
    assert any(
        w.startswith("2 boxes extended past their image and were clipped") for w in ann.warnings
    )
    dropped = [w for w in ann.warnings if "dropped" in w]
    assert len(dropped) == 2
    assert "a.xml: object 3" in dropped[0] and "zero or negative area" in dropped[0]
    assert "a.xml: object 4" in dropped[1] and "outside the 64x48 image" in dropped[1]


def test_yolo_class_id_outside_names_names_file_and_line(tmp_path: Path) -> None:
    root = _yolo(tmp_path, {"a.png": "0 0.5 0.5 0.1 0.1\n3 0.5 0.5 0.1 0.1\n"})
    with pytest.raises(RecogError, match=r"a\.txt line 2: class id 3 is not one of the 3 classes"):
        read_yolo(root)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.1", "expected 5 fields"),
        ("0 0.5 0.5 0.1 0.1 0.9", "expected 5 fields"),
        ("0 0.5 half 0.1 0.1", "'half' is not a number"),
        ("cat 0.5 0.5 0.1 0.1", "'cat' is not a number"),
        ("0 0.5 nan 0.1 0.1", "not a finite number"),
    ],
)
def test_yolo_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    root = _yolo(tmp_path, {"a.png": f"1 0.5 0.5 0.1 0.1\n{line}\n"})
    with pytest.raises(RecogError, match=rf"a\.txt line 2: .*{message}"):
        read_yolo(root)


def test_coco_unknown_category_names_file_and_annotation(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    path = _coco(
        tmp_path / "c.json",
        {
            "images": [{"id": 1, "file_name": "a.png"}],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 4, "bbox": [1, 1, 2, 2]}],
        },
    )
    with pytest.raises(
        RecogError, match=r"c\.json: annotation id 7: category_id 4 is not in 'categories'"
    ):
        read_coco(path)


def test_coco_bad_bbox_names_annotation(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    path = _coco(
        tmp_path / "c.json",
        {
            "images": [{"id": 1, "file_name": "a.png"}],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"id": 9, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2]}],
        },
    )
    with pytest.raises(RecogError, match=r"annotation id 9: 'bbox' must be a list"):
        read_coco(path)


def test_voc_class_not_in_given_names(tmp_path: Path) -> None:
    root = _voc(tmp_path, {"a.png": [("cat", (1, 1, 5, 5)), ("eel", (1, 1, 5, 5))]})
    with pytest.raises(
        RecogError, match=r"a\.xml: object 2: class 'eel' is not in the class names"
    ):
        read_voc(root, class_names=["cat"])


def test_autodetect_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(RecogError, match="no such file"):
        read_detection(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecogError, match="not a detection dataset"):
        read_detection(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(RecogError, match="not a detection annotation file"):
        read_detection(tmp_path / "notes.txt")
    both = _yolo(tmp_path / "both", {"a.png": ""})
    (both / "annotations").mkdir()
    (both / "annotations" / "a.xml").write_text(_voc_xml("a.png", []))
    with pytest.raises(RecogError, match="both a YOLO data.yaml"):
        read_detection(both)
    assert read_detection(both / "data.yaml").records[0].path.name == "a.png"
    with pytest.raises(RecogError, match="unknown annotation format"):
        convert_detection(both / "data.yaml", to="kitti", out=tmp_path / "k")  # type: ignore[arg-type]


def test_writers_copy_when_links_fail_and_leave_images_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _voc(tmp_path / "ds", {"a.png": [("cat", (1, 1, 5, 5))]})
    before = (root / "images" / "a.png").read_bytes()
    out = write_yolo(read_voc(root), root)  # YOLO beside the VOC files: same images/ folder
    assert not (root / "images" / "a.png").is_symlink()
    assert (root / "images" / "a.png").read_bytes() == before
    assert read_yolo(out / "data.yaml").num_boxes == 1

    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError("links not supported here")

    monkeypatch.setattr("os.symlink", no_links)
    copied = write_voc(read_voc(root), tmp_path / "copy")
    image = copied / "JPEGImages" / "a.png"
    assert image.is_file() and not image.is_symlink() and image.read_bytes() == before

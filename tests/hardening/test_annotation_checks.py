"""Annotations that are silently wrong are questioned by `recog data check` and refused by
training (issue 33).

What no loader can use (a recorded image size that is not the file's, a box of strings) is
one line naming the file and the field, exit 2, before anything is written; what the
loaders tolerate (a size left out, a repeated annotation id, a folder link not followed)
is a problem `data check` lists (exit 1).  Every file the user had is byte for byte what
it was.  The datasets are a few generated PNGs in tmp_path; the one run is a 1-epoch
yolo_n at 64 px on six images.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

import recog
from recog import cli
from recog.data.detect import load_detection
from recog.errors import RecogError

TINY_DETECT = ["--task", "detect", "--model", "yolo_n", "--img-size", "64", "--epochs", "1"]


def _recog(capsys, *args: object) -> tuple[int, str, str]:
    """`recog ARGS` in this process: (exit status, the one error line or "", stdout)."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    said = [line for line in err.splitlines() if line.startswith("recog: error:")]
    assert len(said) <= 1, err
    return code, said[0] if said else "", out


def _check(capsys, path: Path) -> tuple[int, str, list[str]]:
    """`recog data check PATH --json`: (exit status, error line, problems)."""
    code, line, out = _recog(capsys, "data", "check", path, "--json")
    return code, line, json.loads(out)["problems"] if out.strip() else []


def _hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (links not followed, so a loop costs nothing)."""
    files = [Path(d, f) for d, _, names in os.walk(root) for f in names]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def _png(path: Path, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (40 * seed % 256, 90, 160)).save(path)
    return path


def _voc(root: Path, *, size: str, real: tuple[int, int] = (64, 48), filename: bool = True):
    """Three images with a VOC XML each; `size` is the XML's <size> block (or "")."""
    (root / "annotations").mkdir(parents=True)
    for i in range(3):
        _png(root / "images" / f"{i}.png", real, i)
        name = f"<filename>{i}.png</filename>" if filename else ""
        box = "<xmin>5</xmin><ymin>5</ymin><xmax>30</xmax><ymax>30</ymax>"
        (root / "annotations" / f"{i}.xml").write_text(
            f"<annotation>{name}{size}<object><name>cat</name><bndbox>{box}</bndbox>"
            "</object></annotation>"
        )
    return root


def _size(width: object, height: object) -> str:
    return f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"


def _coco(path: Path, *, images=None, annotations=None, categories=None) -> Path:
    """A COCO JSON over three 64x48 PNGs beside it, one 'cat' box each unless given."""
    if images is None:
        images = [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 48} for i in range(3)]
    for k, img in enumerate(images):
        _png(path.parent / img["file_name"], seed=k)
    if annotations is None:
        annotations = [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [5, 5, 20, 20]} for i in range(3)
        ]
    if categories is None:
        categories = [{"id": 1, "name": "cat"}]
    data = {"images": images, "annotations": annotations, "categories": categories}
    path.write_text(json.dumps(data))
    return path


def _refused(capsys, path: Path, *needles: str) -> str:
    """`data check` refuses `path` in one line holding `needles`, leaving its files as they were."""
    root = path if path.is_dir() else path.parent
    before = _hashes(root)
    code, line, _ = _check(capsys, path)
    assert code == 2, line
    for needle in needles:
        assert needle in line, line
    assert _hashes(root) == before
    return line


def _questioned(capsys, path: Path, *needles: str) -> list[str]:
    """`data check` lists a problem holding `needles` (exit 1), leaving the files as they were."""
    root = path if path.is_dir() else path.parent
    before = _hashes(root)
    code, line, problems = _check(capsys, path)
    assert code == 1 and not line, line
    assert any(all(n in p for n in needles) for p in problems), problems
    assert _hashes(root) == before
    return problems


# ------------------------------------------------------------- 1. recorded image sizes
def test_a_voc_set_whose_images_were_halved_is_refused_by_check_train_and_doctor(capsys, tmp_path):
    root = _voc(tmp_path / "voc", size=_size(128, 96))
    line = _refused(
        capsys, root, f"{root / 'annotations' / '0.xml'}: <width> x <height> say 128x96", "64x48"
    )
    assert "resized after labelling" in line and "2 more" in line
    before = _hashes(root)
    out = tmp_path / "run"
    code, said, _ = _recog(capsys, "train", "--data", root, *TINY_DETECT, "--out", out)
    assert (code, said) == (2, line)
    code, said, _ = _recog(capsys, "data", "doctor", root, "--out", tmp_path / "doctor")
    assert (code, said) == (2, line)
    assert not out.exists() and not (tmp_path / "doctor").exists()
    with pytest.raises(RecogError, match="say 128x96"):
        recog.train(str(root), "yolo_n", epochs=1, img_size=64, out=str(out))
    assert _hashes(root) == before


def test_a_coco_width_that_is_not_the_images_is_refused(capsys, tmp_path):
    images = [{"id": i, "file_name": f"{i}.png", "width": 128, "height": 96} for i in range(3)]
    path = _coco(tmp_path / "coco" / "a.json", images=images)
    _refused(capsys, path, f"{path}: image id 0: 'width' x 'height' say 128x96", "is 64x48")


def test_a_voc_size_of_another_shape_or_huge_is_refused(capsys, tmp_path):
    square = _voc(tmp_path / "square", size=_size(64, 64))
    _refused(capsys, square, "say 64x64", "drawn on another image")
    huge = _voc(tmp_path / "huge", size=_size(10**9, 10**9))
    _refused(capsys, huge, f"{huge / 'annotations' / '0.xml'}: <width> x <height>", "1000000000")


def test_the_size_compared_is_the_upright_one_of_a_turned_photo(capsys, tmp_path):
    """A phone JPEG stored 64x48 with EXIF orientation 6 is read upright (48x64), so a
    COCO file recording 48x64 is right and one recording the stored 64x48 is refused."""
    root = tmp_path / "coco"
    exif = Image.Exif()
    exif[0x0112] = 6
    for i in range(3):
        root.mkdir(exist_ok=True)
        Image.new("RGB", (64, 48), (30 * i, 10, 10)).save(root / f"{i}.jpg", exif=exif)
    upright = [{"id": i, "file_name": f"{i}.jpg", "width": 48, "height": 64} for i in range(3)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [2, 2, 9, 9]} for i in range(3)]
    data = {"images": upright, "annotations": anns, "categories": [{"id": 1, "name": "cat"}]}
    (root / "good.json").write_text(json.dumps(data))
    assert _check(capsys, root / "good.json")[:2] == (0, "")
    data["images"] = [{**img, "width": 64, "height": 48} for img in upright]
    (root / "stored.json").write_text(json.dumps(data))
    _refused(capsys, root / "stored.json", "say 64x48", "is 48x64", "width and height swapped")


# ------------------------------------------------------ 2. what data check must question
def test_coco_boxes_of_strings_or_booleans_are_refused(capsys, tmp_path):
    for k, value in enumerate(("5", True)):
        anns = [{"id": 7, "image_id": 0, "category_id": 1, "bbox": [value, 5, 20, 20]}]
        path = _coco(tmp_path / f"c{k}" / "a.json", annotations=anns)
        _refused(capsys, path, f"{path}: annotation id 7: bbox: {value!r} is not a number")


def test_coco_repeated_ids_are_questioned_or_refused(capsys, tmp_path):
    anns = [{"id": 1, "image_id": i, "category_id": 1, "bbox": [5, 5, 20, 20]} for i in range(3)]
    path = _coco(tmp_path / "anns" / "a.json", annotations=anns)
    _questioned(capsys, path, f"{path}: annotation 'id' 1 is used 3 times")
    images = [{"id": 1, "file_name": f"{i}.png", "width": 64, "height": 48} for i in range(3)]
    path = _coco(tmp_path / "imgs" / "a.json", images=images, annotations=[])
    _refused(capsys, path, f"{path}: image id 1 appears twice")


@pytest.mark.parametrize("width", [-64, "wide", 64.5, True])
def test_a_coco_width_that_is_no_width_is_refused(capsys, tmp_path, width):
    images = [{"id": i, "file_name": f"{i}.png", "width": width, "height": 48} for i in range(3)]
    path = _coco(tmp_path / "coco" / "a.json", images=images)
    _refused(capsys, path, f"{path}: image id 0: 'width' ", "is not a positive whole number")


def test_voc_files_without_filename_or_size_are_questioned(capsys, tmp_path):
    root = _voc(tmp_path / "nofile", size=_size(64, 48), filename=False)
    _questioned(capsys, root, f"{root / 'annotations' / '0.xml'}: <filename> is missing", "0.png")
    root = _voc(tmp_path / "nosize", size="")
    _questioned(capsys, root, f"{root / 'annotations'}", "no <width> or <height>", "2 more")
    root = _voc(tmp_path / "zero", size=_size(0, 0))
    _questioned(capsys, root, "no <width> or <height> (or 0)")


@pytest.mark.parametrize("folder", ["labels", "images"])
def test_a_yolo_folder_with_a_link_loop_is_questioned_not_walked_forever(capsys, tmp_path, folder):
    root = tmp_path / "yolo"
    for i in range(3):
        _png(root / "images" / f"{i}.png", seed=i)
        (root / "labels").mkdir(exist_ok=True)
        (root / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("names: [cat]\n")
    os.symlink(".", root / folder / "loop")
    _questioned(capsys, root, f"{root / folder / 'loop'}: a symbolic link", "(a loop)")


def test_a_yaml_alias_bomb_in_data_yaml_is_one_line(capsys, tmp_path):
    root = tmp_path / "yolo"
    _png(root / "images" / "0.png")
    (root / "labels").mkdir()
    (root / "labels" / "0.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    bomb = "".join(f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]\n" for k in range(1, 9))
    (root / "data.yaml").write_text('l0: &l0 ["lol"]\n' + bomb + "names: *l8\n")
    _refused(capsys, root, f"{root / 'data.yaml'}: YAML aliases are not accepted")


# ------------------------------------------------------------ 3. COCO's own layout
def _coco_root(root: Path) -> Path:
    """annotations/instances_{train,val}2017.json beside train2017/ and val2017/: 2 classes
    (category ids 1 and 3, as COCO's ids skip), 4 + 2 images."""
    cats = [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}]
    for split, ids in (("train2017", range(1, 5)), ("val2017", range(5, 7))):
        images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 64, "height": 48} for i in ids]
        for img in images:
            (root / split).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 48), (30 * img["id"], 10, 10)).save(
                root / split / img["file_name"]
            )
        anns = [
            {"id": i, "image_id": i, "category_id": 1 + 2 * (i % 2), "bbox": [4, 4, 20, 16]}
            for i in ids
        ]
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats})
        )
    return root


def test_the_official_coco_layout_is_checked_split_and_trained(capsys, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", lambda *a, **k: None)  # the plots are 3/4 of the time
    root = _coco_root(tmp_path / "coco")
    before = _hashes(root)
    code, line, out = _recog(capsys, "data", "check", root, "--json")
    report = json.loads(out)
    assert (code, line, report["problems"]) == (0, "", [])
    assert report["images"] == 6 and report["objects_per_class"] == {"cat": 3, "dog": 3}
    splits = load_detection(str(root), img_size=64)
    assert (len(splits.train), len(splits.val), splits.class_names) == (4, 2, ["cat", "dog"])
    assert all("val2017" in splits.val.load.records[i].path.parent.name for i in range(2))
    out_dir = tmp_path / "run"
    code, line, _ = _recog(capsys, "train", "--data", root, *TINY_DETECT, "--out", out_dir)
    assert (code, line) == (0, "")
    assert (out_dir / "model.safetensors").is_file()
    assert json.loads((out_dir / "labels.json").read_text()) == ["cat", "dog"]
    assert _hashes(root) == before


def test_coco_splits_with_different_categories_are_refused(capsys, tmp_path):
    root = _coco_root(tmp_path / "coco")
    val = root / "annotations" / "instances_val2017.json"
    data = json.loads(val.read_text())
    data["categories"][1]["name"] = "horse"
    val.write_text(json.dumps(data))
    _refused(capsys, root, f"{val}: its categories ['cat', 'horse'] differ")


# ------------------------------------------------------------ 4. nothing to learn
def test_a_coco_file_without_annotations_is_questioned_and_not_trained(capsys, tmp_path):
    path = _coco(tmp_path / "coco" / "a.json", annotations=[])
    _questioned(capsys, path, f"{path}: 'annotations' is empty: no object to learn from")
    before = _hashes(path.parent)
    out = tmp_path / "run"
    code, line, _ = _recog(capsys, "train", "--data", path, *TINY_DETECT, "--out", out)
    assert code == 2 and line.startswith(f"recog: error: {path}: its "), line
    assert "hold no box to learn from" in line
    assert not out.exists() and _hashes(path.parent) == before
    empty = _coco(tmp_path / "nocats" / "a.json", annotations=[], categories=[])
    _questioned(capsys, empty, "'categories' and 'annotations' are empty")

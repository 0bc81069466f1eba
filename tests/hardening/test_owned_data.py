"""Data a user owns is never lost, nor written where it should not be (issue 33).

Each refusal is one line naming the flag or path (`recog: error: ...`, exit 2), and every
file the user had is byte for byte what it was (sha256 before and after).  The datasets
are a few generated PNGs in tmp_path; the one run is digits at 16 px, a width-8 CNN.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import recog
from recog import api, cli
from recog.errors import RecogError

TINY = ["--model", "cnn", "--model-args", "width=8", "--img-size", "16", "--batch-size", "64"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("owned") / "run"
    assert cli.main(["train", "--data", "digits", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    return run


def _recog(capsys, *args: str) -> tuple[int, str]:
    """`recog ARGS` in this process: (exit status, the one error line)."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    said = [line for line in err.splitlines() if line.startswith("recog:")]
    return code, said[0] if len(said) == 1 else err


def _hashes(*roots: Path) -> dict[str, str]:
    """sha256 of every file under `roots` (a file root: itself)."""
    files = [
        f for r in roots for f in ([r] if r.is_file() else sorted(r.rglob("*"))) if f.is_file()
    ]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _noise(path: Path, seed: int, size: tuple[int, int] = (24, 24)) -> Path:
    """A distinct image (no two are near-duplicates for the doctor)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _class_folders(root: Path, per_class: int = 5) -> Path:
    for c, name in enumerate(("ants", "bees")):
        for i in range(per_class):
            _noise(root / name / f"{i}.png", seed=10 * c + i)
    return root


def _voc(root: Path, n: int = 4) -> Path:
    (root / "annotations").mkdir(parents=True)
    for i in range(n):
        _noise(root / "images" / f"{i}.png", seed=i, size=(48, 64))
        (root / "annotations" / f"{i}.xml").write_text(
            f"<annotation><filename>{i}.png</filename><size><width>64</width>"
            "<height>48</height><depth>3</depth></size><object><name>cat</name><bndbox>"
            "<xmin>5</xmin><ymin>5</ymin><xmax>30</xmax><ymax>30</ymax></bndbox></object>"
            "</annotation>"
        )
    return root


def _mask_set(root: Path, n: int = 5) -> Path:
    for i in range(n):
        _noise(root / "images" / f"{i}.png", seed=i)
        mask = np.zeros((24, 24), np.uint8)
        mask[4 : 10 + i, 4:12] = 1
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


# ------------------------------------------------------------ 1. predict --save-dir / --out
@pytest.mark.parametrize(
    ("flag", "where", "how"),
    [
        ("--save-dir", "pngs", "is the input"),
        ("--save-dir", "pngs/drawn", "lies inside the input"),
        ("--save-dir", ".", "contains the input"),
        ("--out", "pngs/rows.jsonl", "lies inside the input"),
    ],
)
def test_predict_never_writes_over_or_among_its_inputs(
    tiny_run, tmp_path, capsys, monkeypatch, flag, where, how
):
    monkeypatch.chdir(tmp_path)
    for i in range(5):
        _noise(tmp_path / "pngs" / f"{i}.png", seed=i)
    before = _hashes(tmp_path / "pngs")
    code, line = _recog(capsys, "predict", tiny_run, "pngs", flag, where)
    assert code == 2
    assert line.startswith(f"recog: error: {flag} {where}: {how} ") and "pngs" in line, line
    assert _hashes(tmp_path / "pngs") == before
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"{i}.png" for i in range(5)]


def test_predict_drawings_replace_only_earlier_drawings(tiny_run, tmp_path, capsys):
    pngs = _class_folders(tmp_path / "data") / "ants"
    drawn = tmp_path / "drawn"
    assert _recog(capsys, "predict", tiny_run, pngs, "--save-dir", drawn)[0] == 0
    assert _recog(capsys, "predict", tiny_run, pngs, "--save-dir", drawn)[0] == 0  # its own: again

    mine = tmp_path / "mine"
    photo = _noise(mine / "0.png", seed=99)
    before = _hashes(mine)
    code, line = _recog(capsys, "predict", tiny_run, pngs, "--save-dir", mine)
    assert code == 2
    assert line == (
        f"recog: error: --save-dir {mine}: {photo} exists and is not a drawing recog made; "
        "give an empty or new folder"
    )
    assert _hashes(mine) == before and sorted(mine.iterdir()) == [photo]


# ------------------------------------------------------------ 2. train --out
@pytest.mark.parametrize(
    ("where", "how"), [("data", "is the input"), ("data/run", "lies inside"), (".", "contains")]
)
def test_train_out_is_never_the_data_folder_inside_it_or_around_it(
    tmp_path, capsys, monkeypatch, where, how
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(api.training, "_train", lambda *a, **k: pytest.fail("must not train"))
    data = _class_folders(tmp_path / "data")
    before = _hashes(data)
    for extra in ([], ["--exist-ok"]):
        code, line = _recog(capsys, "train", "--data", "data", *TINY, "--out", where, *extra)
        assert code == 2
        assert line.startswith(f"recog: error: --out {where}: {how} ") and "data" in line, line
    with pytest.raises(RecogError, match=rf"^--out {where}: {how} "):
        recog.train("data", "cnn", epochs=1, out=where)  # the Python API: the same check
    assert _hashes(data) == before
    assert not (tmp_path / "data" / "run").exists()


def test_train_out_of_a_coco_file_is_refused_in_the_file_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(api.training, "_train", lambda *a, **k: pytest.fail("must not train"))
    coco = tmp_path / "set" / "annotations.json"
    coco.parent.mkdir()
    coco.write_text('{"images": [], "annotations": [], "categories": []}')
    code, line = _recog(capsys, "train", "--data", coco, *TINY, "--out", coco.parent / "run")
    assert code == 2 and line.startswith(f"recog: error: --out {coco.parent / 'run'}: lies inside")
    assert sorted(coco.parent.iterdir()) == [coco]


def test_exist_ok_never_clears_a_folder_that_is_not_a_recog_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(api.training, "_train", lambda *a, **k: pytest.fail("must not train"))
    theirs = tmp_path / "project"
    _class_folders(theirs / "val")
    (theirs / "config.yaml").write_text("name: not a recog run\n")  # and no labels.json
    before = _hashes(theirs)
    for extra in ([], ["--exist-ok"]):
        code, line = _recog(capsys, "train", "--data", "digits", *TINY, "--out", theirs, *extra)
        assert code == 2
        assert line == (
            f"recog: error: --out {theirs}: a folder that is not empty and not a recog run "
            "(no config.yaml and labels.json); give a new or empty folder"
        )
    assert _hashes(theirs) == before


# ------------------------------------------------------------ 3. copies, never hard links
def _assert_a_real_copy(original: Path, copy: Path) -> None:
    before = hashlib.sha256(original.read_bytes()).hexdigest()
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
    assert copy.stat().st_ino != original.stat().st_ino
    with open(copy, "r+b") as f:  # edit the copy in place, as an image editor saving over it
        f.write(b"not the original bytes")
    assert hashlib.sha256(original.read_bytes()).hexdigest() == before


def test_doctor_fix_copies_images_so_editing_the_copy_leaves_the_original(tmp_path, capsys):
    data = _mask_set(tmp_path / "seg")
    fixed = tmp_path / "fixed"
    args = ("data", "doctor", data, "--classes", "bg,fg", "--out", tmp_path / "report")
    assert _recog(capsys, *args, "--fix", fixed)[0] == 0
    copies = sorted(fixed.glob("*/images/0.png"))
    assert len(copies) == 1
    _assert_a_real_copy(data / "images" / "0.png", copies[0])
    _assert_a_real_copy(data / "masks" / "0.png", copies[0].parent.parent / "masks" / "0.png")


def test_convert_copies_images_so_editing_the_copy_leaves_the_original(tmp_path, capsys):
    voc = _voc(tmp_path / "voc")
    assert _recog(capsys, "data", "convert", voc, "--to", "yolo", tmp_path / "yolo")[0] == 0
    _assert_a_real_copy(voc / "images" / "1.png", tmp_path / "yolo" / "images" / "1.png")


# ------------------------------------------------------------ 4. convert's output folder
@pytest.mark.parametrize(
    ("to", "out", "said"),
    [
        ("voc", "voc", "output {out}: is the input {voc}"),
        ("yolo", "voc/yolo", "output {out}: lies inside the input {voc}"),
        ("coco", "voc/annotations.json", "output {out}: lies inside the input {voc}"),
        ("yolo", "theirs", "output {out}: exists and is not empty; give a new or empty folder"),
        ("coco", "theirs/notes.txt.json", "output {out}: exists; give a new file name"),
    ],
)
def test_convert_writes_only_to_a_new_or_empty_place_apart_from_its_source(
    tmp_path, capsys, to, out, said
):
    voc = _voc(tmp_path / "voc")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt.json").write_text("{}")
    _noise(theirs / "images" / "0.png", seed=7)
    before = _hashes(voc, theirs)
    code, line = _recog(capsys, "data", "convert", voc, "--to", to, tmp_path / out)
    assert code == 2
    assert line == "recog: error: " + said.format(out=tmp_path / out, voc=voc) + (
        "; recog never writes over what it reads; write it elsewhere" if "input" in said else ""
    )
    assert _hashes(voc, theirs) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs", "voc"]


def test_split_output_inside_its_source_is_refused(tmp_path, capsys):
    voc = _voc(tmp_path / "voc")
    before = _hashes(voc)
    code, line = _recog(capsys, "data", "split", voc, voc / "split")
    assert code == 2 and line.startswith(f"recog: error: output {voc / 'split'}: lies inside")
    assert _hashes(voc) == before


# ------------------------------------------------------------ 5. --val-split and --seed
@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--val-split", "2", "val_split must be greater than 0 and less than 1, not 2.0"),
        ("--val-split", "0", "val_split must be greater than 0 and less than 1, not 0.0"),
        ("--seed", "-1", "seed must be at least 0"),
    ],
)
def test_split_fraction_and_seed_are_checked_by_every_tool(tmp_path, capsys, flag, value, said):
    voc = _voc(tmp_path / "voc")
    data = _class_folders(tmp_path / "classes")
    before = _hashes(voc, data)
    runs = {
        "split": ("data", "split", voc, tmp_path / "split"),
        "doctor": ("data", "doctor", data, "--out", tmp_path / "report"),
        "train": ("train", "--data", data, *TINY, "--out", tmp_path / "run"),
    }
    for name, args in runs.items():
        code, line = _recog(capsys, *args, flag, value)
        assert code == 2, name
        assert line.startswith("recog: error: ") and flag.strip("-").replace("-", "_") in line
        assert said in line, (name, line)
        if name != "train":  # train names the setting (`command line: val_split ...`)
            assert line.startswith(f"recog: error: {flag}: "), line
    assert _hashes(voc, data) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes", "voc"]


def test_a_split_is_refused_from_the_python_api_as_well(tmp_path):
    from recog.data.formats.convert import split_detection
    from recog.doctor import diagnose

    with pytest.raises(RecogError, match=r"^--val-split: val_split must be greater than 0"):
        split_detection(
            _voc(tmp_path / "voc"), to="yolo", out=tmp_path / "s", val_split=1.0, seed=0
        )
    with pytest.raises(RecogError, match=r"^--seed: seed must be at least 0"):
        diagnose(str(_class_folders(tmp_path / "c")), out=tmp_path / "report", seed=-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "voc"]

"""`recog data doctor` end to end: the page, the JSON, the cleaned copy, and its refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from recog.cli import main
from recog.doctor.facet import DOCTOR
from recog.types import TaskName


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow  # suite time: over 40 s on 2 cores
def test_doctor_writes_its_page_and_a_clean_copy_leaving_the_original(
    planted_folders, tmp_path, capsys
):
    root = planted_folders["root"]
    before = _tree(root)
    out, fix = tmp_path / "report", tmp_path / "clean"
    rc = main(
        ["data", "doctor", str(root), "--out", str(out), "--fix", str(fix), "--fold-steps", "10"]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert (
        "Exact duplicates across train/val" in printed
        and "4 val image(s) have a duplicate" in printed
    )
    assert _tree(root) == before  # the original is never written to

    record = json.loads((out / "doctor.json").read_text())
    assert record["counts"]["leak-exact"] == 2 and record["counts"]["leak-near"] == 2
    assert record["counts"]["duplicate-exact"] == 1
    assert record["images"] == {"train": 25, "val": 12}
    page = (out / "doctor.html").read_text()
    assert page.count("data:image/jpeg;base64,") >= 10  # the pairs drawn side by side
    assert "Near duplicates across train/val (leakage) (2)" in page

    log = json.loads((fix / "changes.json").read_text())
    dropped = {c["file"] for c in log["changes"] if c["action"] == "drop-image"}
    copies = {str(src) for src, _ in planted_folders["exact"] + planted_folders["near"]}
    assert copies <= dropped  # the training copies of val images go; val stays as it was
    assert log["kept_images"] + log["dropped_images"] == 37
    kept = DOCTOR.of(TaskName.CLASSIFY).inventory(str(fix), val_split=0.2, seed=0)
    assert len(kept.entries) == log["kept_images"]
    names = {e.path.name for e in kept.entries}
    assert {"copy0.jpg", "copy1.jpg", "near0.jpg", "near1.jpg"} <= names
    assert all(e.path.stat().st_nlink >= 1 for e in kept.entries)

    # again into the same report folder: replaced; the same cleaned-copy folder: refused
    assert main(["data", "doctor", str(root), "--out", str(out), "--fold-steps", "10"]) == 0
    assert main(["data", "doctor", str(root), "--out", str(out), "--fix", str(fix)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_bad_requests_get_one_line_and_nothing_written(planted_folders, tmp_path, capsys):
    root = planted_folders["root"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    cases = [
        ([str(tmp_path / "missing")], "no such file"),
        ([str(root), "--out", str(root / "report")], "inside the dataset"),
        ([str(root), "--out", str(other)], "not an earlier doctor report"),
        ([str(root), "--fix", str(root / "train" / "clean")], "inside the dataset"),
        (["digits"], "built-in data"),
        ([str(root), "--fold-steps", "3"], "at least 10"),
    ]
    for args, why in cases:
        usage = False
        try:
            rc = main(["data", "doctor", *args])
        except SystemExit as exc:  # argparse's own refusal: its usage, then the line
            rc, usage = exc.code, True
        err = capsys.readouterr().err
        assert rc == 2, args
        assert why in err.strip().splitlines()[-1] and "Traceback" not in err, (args, err)
        assert usage or len(err.strip().splitlines()) == 1, err
    assert (other / "mine.txt").read_text() == "keep me" and len(list(other.iterdir())) == 1
    assert not (root / "report").exists()

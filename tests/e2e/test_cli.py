"""The `recog` CLI end to end: train, val, predict; bad input gives one line and exit 2."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = run_cli(
        "train",
        "--data",
        "digits",
        "--model",
        "cnn",
        "--model-args",
        "width=16",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert f"report: {out / 'report.html'}" in proc.stdout
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("photos")
    digits = load_digits()
    for i in range(5):
        img = Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).resize((40, 40))
        img.save(folder / f"d{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("recog: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_val_writes_report_for_the_run(digits_run):
    proc = run_cli("val", str(digits_run))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((digits_run / "val" / "metrics.json").read_text())
    assert metrics["top1"] > 0.6
    assert (digits_run / "val" / "report.html").is_file()


def test_predict_json_csv_table_and_drawn_images(digits_run, photos, tmp_path):
    proc = run_cli("predict", str(digits_run), str(photos), "--format", "json", "--top-k", "3")
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert len(records) == 5  # notes.txt ignored
    assert all(len(r["top_k"]) == 3 and r["label"] in "0123456789" for r in records)
    # digits 0..4 in order: a trained model gets most of them
    assert (
        sum(r["label"] == str(i) for i, r in enumerate(sorted(records, key=lambda r: r["path"])))
        >= 3
    )

    proc = run_cli(
        "predict",
        str(digits_run),
        str(photos / "d*.png"),
        "--format",
        "csv",
        "--save-dir",
        str(tmp_path / "drawn"),
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 5 and 0.0 <= float(rows[0]["score"]) <= 1.0
    assert len(list((tmp_path / "drawn").glob("*.png"))) == 5

    proc = run_cli("predict", str(digits_run), str(photos / "d0.png"))
    assert proc.returncode == 0 and "d0.png" in proc.stdout


def test_missing_data_path(tmp_path):
    line = _one_line_error(run_cli("train", "--data", str(tmp_path / "nowhere"), "--epochs", "1"))
    assert "nowhere" in line


def test_unknown_model_lists_close_names():
    line = _one_line_error(
        run_cli("train", "--data", "digits", "--model", "resnet81", "--epochs", "1")
    )
    assert "resnet18" in line


def test_incomplete_run_directory(digits_run, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text((digits_run / "config.yaml").read_text())
    line = _one_line_error(run_cli("predict", str(broken), str(digits_run)))
    assert "model.safetensors" in line and "labels.json" in line


def test_predict_missing_image_path(digits_run, tmp_path):
    line = _one_line_error(run_cli("predict", str(digits_run), str(tmp_path / "absent.jpg")))
    assert "absent.jpg" in line


def test_resume_without_checkpoint(tmp_path):
    line = _one_line_error(run_cli("train", "--resume", str(tmp_path)))
    assert "nothing to resume" in line

"""The issue's headline numbers, reproduced end to end (slow: run by `make test-all`)."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli, shared_dataset

pytestmark = pytest.mark.slow


def test_digits_cnn_15_epochs_reaches_97_percent_in_under_120_s(tmp_path):
    out = tmp_path / "digits"
    proc = run_cli(
        "train", "--data", "digits", "--model", "cnn", "--epochs", "15", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["top1"] >= 0.97
    assert metrics["train_seconds"] < 120


def test_hymenoptera_resnet18_from_scratch_reaches_70_percent(tmp_path):
    data = shared_dataset("hymenoptera")
    out = tmp_path / "hym"
    proc = run_cli(
        "train",
        "--data",
        str(data),
        "--model",
        "resnet18",
        "--img-size",
        "128",
        "--epochs",
        "30",
        "--out",
        str(out),
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["top1"] >= 0.70
    val = run_cli("val", str(out))
    assert val.returncode == 0 and (out / "val" / "report.html").is_file()
    pred = run_cli("predict", str(out), str(data / "val" / "bees"), "--format", "json")
    assert pred.returncode == 0
    assert len(json.loads(pred.stdout)) == 83

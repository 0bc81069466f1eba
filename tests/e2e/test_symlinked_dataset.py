"""Issue 34's must-show: hymenoptera laid out as links (every file a symbolic link into a folder
outside the dataset) trains and predicts exactly as the copied one, with --deterministic."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import run_cli, shared_dataset

pytestmark = pytest.mark.slow


def test_a_dataset_of_links_trains_and_predicts_as_its_copy(tmp_path):
    source = shared_dataset("hymenoptera")
    copied, linked, store = tmp_path / "copied", tmp_path / "linked", tmp_path / "store"
    shutil.copytree(source, copied)
    shutil.copytree(source, store)  # the files live here; the dataset holds only links
    for file in sorted(p for p in store.rglob("*") if p.is_file()):
        link = linked / file.relative_to(store)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(file)
    metrics, answers = [], []
    # --amp off: `auto` times bf16 against float32 on the spot, and a busy core can tip it
    for data in (copied, linked):
        out = tmp_path / f"run-{data.name}"
        train = run_cli("train", "--data", str(data), "--model", "cnn", "--epochs", "2",
                        "--img-size", "64", "--deterministic", "--amp", "off", "--out", str(out))  # fmt: skip
        assert train.returncode == 0, train.stderr[-2000:]
        found = json.loads((out / "metrics.json").read_text())
        metrics.append({k: v for k, v in found.items() if not k.endswith(("seconds", "img_per_s"))})
        pred = run_cli("predict", str(out), str(data / "val"), "--format", "json")
        assert pred.returncode == 0, pred.stderr[-2000:]
        answers.append([(r["label"], r["score"]) for r in json.loads(pred.stdout)])
    assert metrics[0] == metrics[1]
    assert answers[0] == answers[1] and len(answers[0]) == 153

"""Detection end to end through the CLI: shapes and the real raccoon VOC set."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli, shared_dataset


# 35-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_yolo_on_shapes_trains_evaluates_and_predicts(tmp_path):
    out = tmp_path / "yolo"
    proc = run_cli(
        "train",
        "--data",
        "shapes:64:16",
        "--model",
        "yolo_n",
        "--epochs",
        "2",
        "--img-size",
        "96",
        "--batch-size",
        "16",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"map", "map50", "map75", "per_class", "train_seconds"} <= set(metrics)
    for plot in (
        "curves.png",
        "pr_curves.png",
        "detection_confusion.png",
        "samples.png",
        "f1_confidence.png",
        "labels.png",
        "train_batch.png",
    ):
        assert (out / "plots" / plot).is_file(), plot
    val = run_cli("val", str(out))
    assert val.returncode == 0, val.stderr


# 35-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_raccoon_voc_split_train_and_predict(tmp_path):
    data = shared_dataset("raccoon")
    out = tmp_path / "raccoon"
    proc = run_cli(
        "train",
        "--data",
        str(data),
        "--model",
        "yolo_n",
        "--epochs",
        "1",
        "--img-size",
        "96",
        "--batch-size",
        "16",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "labels.json").read_text()) == ["raccoon"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 40  # the fixed-seed 160/40 split
    pred = run_cli(
        "predict",
        str(out),
        str(data / "images" / "raccoon-1.jpg"),
        "--format",
        "json",
        "--save-dir",
        str(tmp_path / "drawn"),
    )
    assert pred.returncode == 0, pred.stderr
    record = json.loads(pred.stdout)[0]
    assert "detections" in record
    assert (tmp_path / "drawn" / "raccoon-1.png").is_file()


# 35-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_data_convert_and_stats_on_raccoon(tmp_path):
    data = shared_dataset("raccoon")
    assert (
        run_cli("data", "convert", str(data), "--to", "coco", str(tmp_path / "coco")).returncode
        == 0
    )
    done = run_cli(
        "data",
        "convert",
        str(tmp_path / "coco" / "annotations.json"),
        "--to",
        "yolo",
        str(tmp_path / "yolo"),
    )
    assert done.returncode == 0, done.stderr
    stats = run_cli("data", "stats", str(tmp_path / "yolo"), "--json")
    assert stats.returncode == 0, stats.stderr
    report = json.loads(stats.stdout)
    assert report["images"] == 200 and report["objects_per_class"] == {"raccoon": 217}
    assert sum(report["box_side_histogram"].values()) == 217


def test_data_split_writes_the_split_train_uses(tmp_path):
    from recog.data.detect import load_detection

    data = shared_dataset("raccoon")
    done = run_cli("data", "split", str(data), str(tmp_path / "split"), "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "split" / "images" / "train").iterdir())) == 160
    assert len(list((tmp_path / "split" / "images" / "val").iterdir())) == 40
    # training on the written YOLO set uses its folders; on the VOC set, the same seeded split
    from_voc = load_detection(str(data), img_size=64, seed=3).val
    from_yolo = load_detection(str(tmp_path / "split"), img_size=64, seed=99).val
    stems = sorted(from_voc[i].path.split("/")[-1] for i in range(len(from_voc)))
    assert stems == sorted(from_yolo[i].path.split("/")[-1] for i in range(len(from_yolo)))
    assert len(stems) == 40

"""Segmentation end to end through the CLI: shapes, a mask folder, data tools, and (slow)
the must-show runs of the issue."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_cli, shared_dataset
from PIL import Image


# 35-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_unet_on_shapes_trains_evaluates_and_predicts(tmp_path):
    out = tmp_path / "unet"
    proc = run_cli(
        "train", "--task", "segment", "--data", "shapes:32:8", "--model", "unet",
        "--epochs", "1", "--img-size", "64", "--batch-size", "16", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "miou" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"miou", "dice", "pixel_acc", "per_class", "train_seconds"} <= set(metrics)
    for plot in (
        "curves.png",
        "confusion_matrix.png",
        "samples.png",
        "labels.png",
        "train_batch.png",
    ):
        assert (out / "plots" / plot).is_file(), plot
    assert run_cli("val", str(out)).returncode == 0
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 150, 3), dtype=np.uint8)).save(
        photo
    )
    pred = run_cli(
        "predict", str(out), str(photo), "--format", "json", "--save-dir", str(tmp_path / "drawn")
    )
    assert pred.returncode == 0, pred.stderr
    record = json.loads(pred.stdout)[0]["segmentation"]
    assert (record["width"], record["height"]) == (
        150,
        90,
    )  # tiled in 128 px windows, original size back
    assert (tmp_path / "drawn" / "photo.png").is_file()
    mask = np.asarray(Image.open(tmp_path / "drawn" / "photo_mask.png"))
    assert mask.shape == (90, 150) and mask.max() < 6


# 35-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_mask_folder_infers_segment_and_data_tools_work(tmp_path):
    root = tmp_path / "cells"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        mask = np.zeros((48, 48), np.uint8)
        mask[10:30, 5 + i : 25 + i] = 255
        image = (rng.normal(60, 10, (48, 48)) + (mask > 0) * 120).clip(0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    out = tmp_path / "run"
    proc = run_cli(
        "train", "--data", str(root), "--classes", "back,cell", "--epochs", "1",
        "--img-size", "64", "--batch-size", "4", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "labels.json").read_text()) == ["back", "cell"]
    config = (out / "config.yaml").read_text()
    assert "task: segment" in config and "model: unet" in config
    stats = run_cli("data", "stats", str(root), "--json")
    assert stats.returncode == 0 and json.loads(stats.stdout)["images"] == 6
    coco = run_cli("data", "convert", str(root), "--to", "coco", str(tmp_path / "coco"))
    assert coco.returncode == 0, coco.stderr
    ann = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert len(ann["annotations"]) == 6  # one connected cell per image
    back = run_cli(
        "data", "convert", str(tmp_path / "coco" / "annotations.json"), "--to", "masks",
        str(tmp_path / "again"),
    )  # fmt: skip
    assert back.returncode == 0, back.stderr
    again = np.asarray(Image.open(tmp_path / "again" / "masks" / "3.png"))
    assert (again == (np.asarray(Image.open(root / "masks" / "3.png")) > 0)).all()
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "masks" / "2.png")
    check = run_cli("data", "check", str(root))
    assert check.returncode == 1 and "mask is 5x5" in check.stdout


# 20-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_mask_rcnn_on_tiny_shapes_reports_mask_map_and_writes_rle_json(tmp_path):
    """In-process (the API under the CLI) to keep the instance path cheap to test."""
    import recog
    from recog.api.facet import OUTPUT

    out = tmp_path / "mrcnn"
    rec = recog.train(
        "shapes:4:2", "mask_rcnn", task="segment", epochs=1, img_size=64, batch_size=2, out=str(out)
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"mask_map", "mask_map50", "map", "map50", "per_class"} <= set(metrics)
    loaded = recog.load(out)
    image = np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    (pred,) = loaded.predict(image)
    assert pred.masks.shape[-2:] == (50, 70) and len(pred.masks) == len(pred.boxes)
    record = loaded.task.to_record(pred)
    assert "detections" in record and record["segmentation"]["width"] == 70
    (written,) = OUTPUT.of(loaded.task).save(loaded.task, pred, tmp_path, "scene")
    assert isinstance(json.loads(written.read_text()), list)
    assert rec.task.scores.primary == "mask_map"


def test_bad_mask_is_one_clear_line(tmp_path):
    root = tmp_path / "bad"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(np.full((16, 16, 3), (255, 0, 0), np.uint8)).save(
            root / "masks" / f"{i}.png"
        )
    proc = run_cli("train", "--data", str(root), "--epochs", "1", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "an RGB mask that is not a palette image" in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------- must show
@pytest.mark.slow
def test_unet_on_shapes_reaches_085_miou(tmp_path):
    out = tmp_path / "shapes-unet"
    proc = run_cli(  # the command as is: the recipe plans the budget (12 min cap)
        "train", "--task", "segment", "--data", "shapes", "--model", "unet",
        "--out", str(out), timeout=3600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["miou"] >= 0.85
    assert metrics["train_seconds"] < 900


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "args", "floor"),
    [
        ("fcn_resnet18", ["--epochs", "3"], 0.25),  # measured 0.300 after 3 epochs
        ("deeplabv3", [], 0.6),  # its defaults, 12 epochs of batch 16: measured 0.714
    ],
)
def test_other_semantic_models_learn_on_shapes(model, args, floor, tmp_path):
    out = tmp_path / model
    proc = run_cli(
        "train", "--task", "segment", "--data", "shapes", "--model", model, *args,
        "--out", str(out), timeout=3600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["miou"] > floor  # background alone scores 0.15
    assert min(metrics["per_class"].values()) > 0.0  # every shape class is found somewhere


@pytest.mark.slow
def test_unet_from_scratch_on_membrane_reaches_078_miou(tmp_path):
    data = shared_dataset("membrane")
    out = tmp_path / "membrane"
    proc = run_cli(
        "train", "--data", str(data), "--model", "unet", "--classes", "membrane,cell",
        "--img-size", "256", "--batch-size", "8", "--epochs", "100", "--augment", "strong",
        "--out", str(out), timeout=3600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["miou"] >= 0.78
    assert set(metrics["per_class"]) == {"membrane", "cell"}


@pytest.mark.slow
def test_mask_rcnn_on_shapes_reports_mask_and_box_map(tmp_path):
    out = tmp_path / "mask_rcnn"
    proc = run_cli(
        "train", "--task", "segment", "--data", "shapes", "--model", "mask_rcnn",
        "--out", str(out), timeout=4 * 3600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"mask_map", "mask_map50", "map", "map50"} <= set(metrics)
    assert metrics["mask_map50"] >= 0.8

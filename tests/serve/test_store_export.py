"""The history store and `recog data export-feedback`: corrections become a training set."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli
from serving import digit_png, png_bytes

from recog.data.formats.class_folders import list_splits
from recog.data.formats.detection import read_detection
from recog.serve.store import Store


def _predict(client, data, model="digits"):
    r = client.post(f"/v1/predict?model={model}", files={"file": ("x.png", data, "image/png")})
    assert r.status_code == 200, r.text
    return r.json()


def test_images_are_stored_only_with_keep_images(make_client, new_db):
    urls = {"plain": new_db(), "kept": new_db()}
    plain = make_client(db_url=urls["plain"])
    kept = make_client(db_url=urls["kept"], keep_images=True)
    for client, name in ((plain, "plain"), (kept, "kept")):
        pid = _predict(client, digit_png(2))["id"]
        client.post("/v1/feedback", json={"prediction_id": pid, "label": "2"})
        store = Store(urls[name])
        (example,) = store.corrected()
        store.close()
        if name == "kept":
            assert example.image == digit_png(2) and example.media_type == "image/png"
        else:
            assert example.image is None and example.media_type is None
        assert example.label == "2"


def test_store_records_time_model_hash_result_latency_and_newest_feedback(db_url):
    store = Store(db_url)
    store.record(
        prediction_id="a" * 32,
        model="m",
        task="classify",
        image_sha256="f" * 64,
        width=3,
        height=2,
        result={"label": "x", "score": 0.5, "top_k": [{"label": "x", "score": 0.5}]},
        latency_ms=1.5,
    )
    assert store.add_feedback("nope", label="y", boxes=None, comment=None) is None
    store.add_feedback("a" * 32, label="y", boxes=None, comment="first")
    store.add_feedback("a" * 32, label="z", boxes=None, comment=None)
    (item,) = store.history()
    assert item["model"] == "m" and item["latency_ms"] == 1.5 and item["created"].endswith("+00:00")
    assert item["image"] == {"sha256": "f" * 64, "width": 3, "height": 2}
    assert item["feedback"]["label"] == "z"
    store.close()


def test_export_classification_feedback_as_class_folders(make_client, db_url, tmp_path):
    db = db_url
    client = make_client(db_url=db, keep_images=True)
    truth = {0: "0", 1: "1", 2: "2", 10: "0", 11: "1", 12: "2"}
    for index, label in truth.items():
        pid = _predict(client, digit_png(index))["id"]
        assert (
            client.post("/v1/feedback", json={"prediction_id": pid, "label": label}).status_code
            == 200
        )
    # a correction of a correction: the newest wins
    pid = _predict(client, digit_png(20))["id"]
    client.post("/v1/feedback", json={"prediction_id": pid, "label": "5"})
    client.post("/v1/feedback", json={"prediction_id": pid, "label": "0"})
    _predict(client, digit_png(21))  # no feedback: not exported
    out = tmp_path / "export"
    proc = run_cli("data", "export-feedback", "--db", db, str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "2"]
    assert len(list((out / "0").iterdir())) == 3
    train, val, names, _ = list_splits(str(out), val_split=0.34, seed=0)
    assert names == ["0", "1", "2"] and len(train.labels) + len(val.labels) == 7


# 20-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_export_detection_feedback_as_coco(make_client, recognizers, db_url, tmp_path):
    db = db_url
    client = make_client(db_url=db, keep_images=True)
    names = recognizers["shapes"].class_names
    pids = [_predict(client, png_bytes(80, 60, (i * 40, 0, 0)), "shapes")["id"] for i in range(3)]
    client.post(
        "/v1/feedback",
        json={
            "prediction_id": pids[0],
            "boxes": [
                {"label": names[0], "box": [1, 2, 30, 40]},
                {"label": names[1], "box": [40, 10, 70, 50]},
            ],
        },
    )
    client.post("/v1/feedback", json={"prediction_id": pids[1], "boxes": []})
    client.post(
        "/v1/feedback",
        json={"prediction_id": pids[2], "boxes": [{"label": names[1], "box": [0, 0, 10, 10]}]},
    )
    out = tmp_path / "coco"
    proc = run_cli("data", "export-feedback", "--db", db, "--model", "shapes", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "annotations.json").read_text())
    assert len(data["images"]) == 3 and len(data["annotations"]) == 3
    ann = read_detection(out / "annotations.json")
    assert ann.class_names == sorted(names[:2]) and ann.num_boxes == 3
    first = next(r for r in ann.records if len(r.boxes) == 2)
    assert first.width == 80 and first.boxes[0].tolist() == [1.0, 2.0, 30.0, 40.0]


def test_export_without_feedback_is_a_clear_error(db_url, tmp_path):
    db = db_url
    Store(db).close()
    proc = run_cli("data", "export-feedback", "--db", db, str(tmp_path / "out"))
    assert proc.returncode == 2 and "no corrected predictions" in proc.stderr


def test_export_asks_the_task_and_segmentation_corrections_are_not_exported(db_url, tmp_path):
    """What a task's corrections become is its serving facet's `export`; segmentation (semantic
    and instance) gives none, and nothing is written."""
    import hashlib

    from recog.serve.export import export_feedback
    from recog.serve.facet import SERVE
    from recog.tasks import ClassifyTask, DetectTask, InstanceSegmentTask, SegmentTask

    assert not SERVE.has(SegmentTask) and not SERVE.has(InstanceSegmentTask)
    assert SERVE.has(ClassifyTask) and SERVE.has(DetectTask)
    db = db_url
    image = png_bytes(30, 20)
    store = Store(db)
    store.record(
        prediction_id="c" * 32,
        model="cells",
        task="segment",
        image_sha256=hashlib.sha256(image).hexdigest(),
        width=30,
        height=20,
        result={},
        latency_ms=1.0,
        image=image,
        media_type="image/png",
    )
    store.add_feedback("c" * 32, label="circle", boxes=None, comment=None)
    store.close()
    out = tmp_path / "out"
    summary = export_feedback(db, out)
    assert summary == {
        "cells": {
            "task": "segment",
            "path": str(out),
            "corrections": 1,
            "without_image": 0,
            "format": None,
            "images": 0,
            "note": "corrections of segment models are not exported",
        }
    }
    assert not out.exists()

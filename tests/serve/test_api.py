"""The REST API through FastAPI's TestClient: every endpoint, and every error it can give."""

from __future__ import annotations

import base64
import re

import pytest
from serving import animated_gif, digit_png, jpeg_bytes, png_bomb, png_bytes, segment_run

from recog.serve.limits import Limits


def _file(data: bytes, name: str = "photo.png", ctype: str = "image/png"):
    return {"file": (name, data, ctype)}


def _assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"], body
    assert "Traceback" not in response.text and 'File "' not in response.text
    if code is not None:
        assert body["error"] == code, body
    return body


# ------------------------------------------------------------------ service endpoints
def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "models": ["digits", "shapes"],
        "store": {"status": "ok", "detail": None, "queued": 0, "dropped": 0},
    }


def test_models_lists_task_classes_size_and_metrics(client, recognizers):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"digits", "shapes"}
    digits, shapes = models["digits"], models["shapes"]
    assert digits["task"] == "classify" and shapes["task"] == "detect"
    assert digits["classes"] == [str(i) for i in range(10)]
    assert shapes["classes"] == recognizers["shapes"].class_names
    assert digits["input_size"] == recognizers["digits"].img_size
    assert shapes["input_size"] == 64
    assert 0 <= digits["metrics"]["top1"] <= 1 and "map50" in shapes["metrics"]
    assert digits["architecture"] == "cnn" and digits["max_batch"] == 16


def _as_run(rec, run_dir, run_task, **config):
    """`rec`'s model and classes served as if they were the run in `run_dir`, with `run_task`."""
    import dataclasses

    from recog.api import Recognizer

    return Recognizer(
        run_dir=run_dir,
        config=dataclasses.replace(rec.config, **config),
        class_names=rec.class_names,
        model=rec.model,
        spec=rec.spec,
        task=run_task,
        device=rec.device,
    )


def test_models_report_the_main_metric_their_task_defines(recognizers, tmp_path, tmp_path_factory):
    """`main_metric` is the run's `Task.scores.primary` and its metrics.json value, for each task."""
    import json

    from fastapi.testclient import TestClient

    import recog
    from recog.serve import ServeConfig, create_app
    from recog.tasks import InstanceSegmentTask

    shapes = recognizers["shapes"]
    # a Mask R-CNN run as /v1/models sees it (its Task and metrics.json) without training one
    # on CPU: the app is never asked to predict with it
    masks_dir = tmp_path / "shapes-mask_rcnn"
    masks_dir.mkdir()
    (masks_dir / "metrics.json").write_text(
        json.dumps({"map": 0.5, "map50": 0.7, "mask_map": 0.25})
    )
    mean, std = shapes.task.mean.flatten().tolist(), shapes.task.std.flatten().tolist()
    instance = InstanceSegmentTask(shapes.class_names, mean, std, img_size=64)
    masks = _as_run(shapes, masks_dir, instance, task="segment", model="mask_rcnn")
    served = {**recognizers, "cells": recog.load(segment_run(tmp_path_factory)), "masks": masks}
    app = create_app(served, ServeConfig(db_url=f"sqlite:///{tmp_path / 'h.db'}", warm_up=False))
    with TestClient(app) as client:
        models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    main = {name: m["main_metric"]["name"] for name, m in models.items()}
    assert main == {"digits": "top1", "shapes": "map", "cells": "miou", "masks": "mask_map"}
    for name, rec in served.items():
        saved = json.loads((rec.run_dir / "metrics.json").read_text())
        assert main[name] == rec.task.scores.primary
        assert models[name]["main_metric"]["value"] == saved[main[name]], name
    assert models["masks"]["main_metric"] == {"name": "mask_map", "value": 0.25}
    assert models["masks"]["task"] == "segment" and models["masks"]["architecture"] == "mask_rcnn"
    # what the page may ask or let a user correct, also as each Task says
    correction = {name: (m["correction"], m["top_k"]) for name, m in models.items()}
    assert correction == {
        "digits": ("label", True),
        "shapes": ("boxes", False),
        "cells": (None, False),
        "masks": (None, False),
    }


def test_a_run_without_metrics_names_its_main_metric_without_a_value(recognizers, tmp_path):
    from fastapi.testclient import TestClient

    from recog.serve import ServeConfig, create_app

    digits = recognizers["digits"]
    bare = _as_run(digits, tmp_path / "no-metrics", digits.task)  # no metrics.json there
    app = create_app({"bare": bare}, ServeConfig(db_url="sqlite://", warm_up=False))
    with TestClient(app) as client:
        (info,) = client.get("/v1/models").json()["models"]
    assert info["metrics"] == {} and info["main_metric"] == {"name": "top1", "value": None}


def test_page_and_static_files_are_served_without_anything_external(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for path in ("/static/app.js", "/static/style.css"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert not re.search(r"https?://", r.text), path
    assert not re.search(r"(src|href)=\"https?://", page.text)


def test_openapi_documents_every_route_and_both_predict_bodies(client):
    schema = client.get("/openapi.json").json()
    assert {
        "/v1/predict",
        "/v1/models",
        "/v1/feedback",
        "/v1/history",
        "/healthz",
        "/metrics",
    } <= set(schema["paths"])
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    assert "PredictJSON" in schema["components"]["schemas"]
    errors = schema["paths"]["/v1/predict"]["post"]["responses"]
    assert {"400", "404", "413", "415", "422"} <= set(errors)
    assert errors["422"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN


# ------------------------------------------------------------------ predict
def test_predict_multipart_classification(client):
    r = client.post("/v1/predict", files=_file(digit_png(0)), params={"top_k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "digits" and body["task"] == "classify"
    assert re.fullmatch(r"[0-9a-f]{32}", body["id"])
    assert body["image"]["width"] == 64 and len(body["image"]["sha256"]) == 64
    result = body["result"]
    assert len(result["top_k"]) == 3 and result["label"] == result["top_k"][0]["label"]
    scores = [t["score"] for t in result["top_k"]]
    assert scores == sorted(scores, reverse=True) and 0 <= scores[0] <= 1
    assert "detections" not in result  # only the task's own fields
    assert body["latency_ms"] > 0


def test_predict_json_base64_data_url_and_raw_bytes(client):
    data = digit_png(3)
    plain = client.post("/v1/predict", json={"image": base64.b64encode(data).decode()})
    url = client.post(
        "/v1/predict", json={"image": "data:image/png;base64," + base64.b64encode(data).decode()}
    )
    raw = client.post(
        "/v1/predict", content=data, headers={"content-type": "application/octet-stream"}
    )
    results = [r.json()["result"] for r in (plain, url, raw)]
    assert all(r.status_code == 200 for r in (plain, url, raw))
    assert results[0] == results[1] == results[2]


def test_predict_detection_boxes_are_in_image_pixels(client):
    r = client.post(
        "/v1/predict",
        files=_file(jpeg_bytes(120, 90), "x.jpg", "image/jpeg"),
        params={"model": "shapes"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "detect" and isinstance(body["result"]["detections"], list)
    for d in body["result"]["detections"]:
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 <= x2 <= 120 and 0 <= y1 <= y2 <= 90


def test_file_name_and_declared_type_are_ignored(client):
    r = client.post(
        "/v1/predict", files=_file(digit_png(1), "evil.exe", "application/x-msdownload")
    )
    assert r.status_code == 200
    _assert_error(
        client.post("/v1/predict", files=_file(b"just text", "photo.jpg", "image/jpeg")),
        415,
        "unsupported_media",
    )


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"files": _file(b"")}, 400, "empty"),
        ({"files": _file(jpeg_bytes()[:400], "a.jpg")}, 422, "undecodable"),
        ({"files": _file(png_bytes()[:-25])}, 422, "undecodable"),
        ({"files": _file(png_bomb())}, 413, "too_many_pixels"),
        ({"files": _file(animated_gif(500), "a.gif")}, 413, "too_many_frames"),
        ({"json": {"image": "%%% not base64"}}, 400, "bad_base64"),
        ({"json": {"image": base64.b64encode(b"text").decode()}}, 415, "unsupported_media"),
        ({"json": {"picture": "x"}}, 400, "missing_image"),
        ({"json": ["image"]}, 400, "missing_image"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "bad_json"),
        ({"data": {"other": "field"}, "files": {"note": ("n.txt", b"x", "text/plain")}}, 400, "missing_file"),
        ({"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}}, 400, None),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media"),
        ({}, 415, "unsupported_media"),
    ],
    ids=[
        "zero-bytes", "truncated-jpeg", "truncated-png", "png-bomb", "long-gif", "bad-base64",
        "base64-text", "json-no-image", "json-list", "bad-json", "form-without-file",
        "broken-multipart", "text-body", "no-body",
    ],
)  # fmt: skip
def test_predict_rejects_bad_input_with_a_4xx(client, kwargs, status, code):
    _assert_error(client.post("/v1/predict", **kwargs), status, code)


def test_predict_parameter_errors(client):
    png = _file(digit_png())
    _assert_error(client.post("/v1/predict?model=nope", files=png), 404, "unknown_model")
    for bad in ("0", "101", "x"):
        _assert_error(client.post(f"/v1/predict?top_k={bad}", files=png), 422, "invalid_request")


def test_byte_cap_gives_413_before_decoding(make_client):
    client = make_client(limits=Limits(max_bytes=2000))
    big = jpeg_bytes(200, 200)
    assert len(big) > 2000
    _assert_error(client.post("/v1/predict", files=_file(big, "a.jpg")), 413, "too_large")
    body = "x" * 50_000
    _assert_error(client.post("/v1/predict", json={"image": body}), 413, "too_large")


def test_timeouts_give_408_and_504(make_client):
    slow_upload = make_client(limits=Limits(read_timeout_s=0))
    _assert_error(slow_upload.post("/v1/predict", files=_file(digit_png())), 408, "timeout")
    slow_model = make_client(limits=Limits(predict_timeout_s=1e-9))
    _assert_error(slow_model.post("/v1/predict", files=_file(digit_png())), 504, "timeout")


def test_full_queue_gives_503(client, monkeypatch):
    from recog.serve.batcher import MicroBatcher, QueueFull

    async def full(self, *args, **kwargs):
        raise QueueFull

    monkeypatch.setattr(MicroBatcher, "submit", full)
    _assert_error(client.post("/v1/predict", files=_file(digit_png())), 503, "busy")


def test_a_bug_is_a_bare_500_without_traceback(client, recognizers, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals /home/x/model.py")

    monkeypatch.setattr(recognizers["digits"].task, "to_record", broken)
    r = client.post("/v1/predict", files=_file(digit_png()))
    body = _assert_error(r, 500, "internal")
    assert "secret" not in r.text and body["detail"] == "internal server error"
    monkeypatch.undo()
    assert client.post("/v1/predict", files=_file(digit_png())).status_code == 200


def test_unknown_route_and_method_are_json_errors(client):
    _assert_error(client.get("/v1/nothing"), 404, "not_found")
    _assert_error(client.get("/v1/predict"), 405, "method_not_allowed")


# ------------------------------------------------------------------ auth, CORS
def test_api_key_guards_the_api_but_not_the_page(make_client):
    client = make_client(api_key="s3cret")
    png = _file(digit_png())
    for r in (
        client.post("/v1/predict", files=png),
        client.post("/v1/predict", files=png, headers={"X-API-Key": "wrong"}),
        client.get("/v1/models"),
        client.get("/v1/history"),
        client.get("/metrics"),
        client.post("/v1/feedback", json={"prediction_id": "x", "label": "1"}),
    ):
        _assert_error(r, 401, "unauthorized")
    assert client.post("/v1/predict", files=png, headers={"X-API-Key": "s3cret"}).status_code == 200
    bearer = {"Authorization": "Bearer s3cret"}
    assert client.get("/v1/models", headers=bearer).status_code == 200
    assert client.get("/healthz").status_code == 200 and client.get("/").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "APIKeyHeader" in schema["components"]["securitySchemes"]


def test_recog_api_key_environment_variable(monkeypatch, tmp_path):
    import recog.serve
    from recog import cli

    seen = {}
    monkeypatch.setattr(recog.serve, "serve", lambda runs, config, **kw: seen.update(config=config))
    monkeypatch.setenv("RECOG_API_KEY", "from-env")
    assert cli.main(["serve", str(tmp_path), "--max-batch", "4"]) == 0
    assert seen["config"].api_key == "from-env" and seen["config"].max_batch == 4
    assert cli.main(["serve", str(tmp_path), "--api-key", "flag"]) == 0
    assert seen["config"].api_key == "flag"


def test_no_cors_unless_asked(make_client):
    origin = {"Origin": "https://elsewhere.example"}
    plain = make_client().get("/v1/models", headers=origin)
    assert "access-control-allow-origin" not in plain.headers
    allowed = make_client(cors_origins=("https://elsewhere.example",))
    r = allowed.get("/v1/models", headers=origin)
    assert r.headers["access-control-allow-origin"] == "https://elsewhere.example"


# ------------------------------------------------------------------ feedback and history
def test_feedback_on_classification_and_detection(store_client, recognizers):
    client = store_client
    cls = client.post("/v1/predict", files=_file(digit_png(5))).json()
    r = client.post(
        "/v1/feedback", json={"prediction_id": cls["id"], "label": "5", "comment": "a five"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "5" and r.json()["prediction_id"] == cls["id"]
    det = client.post("/v1/predict?model=shapes", files=_file(png_bytes(80, 60))).json()
    name = recognizers["shapes"].class_names[0]
    boxes = [{"label": name, "box": [5, 6, 40, 30]}]
    r = client.post("/v1/feedback", json={"prediction_id": det["id"], "boxes": boxes})
    assert r.status_code == 200 and r.json()["boxes"] == [
        {"label": name, "box": [5.0, 6.0, 40.0, 30.0]}
    ]
    empty = client.post("/v1/feedback", json={"prediction_id": det["id"], "boxes": []})
    assert empty.status_code == 200 and empty.json()["boxes"] == []


def test_feedback_errors(store_client):
    client = store_client
    pid = client.post("/v1/predict", files=_file(digit_png())).json()["id"]
    cases = [
        ({"prediction_id": "0" * 32, "label": "1"}, 404, "unknown_prediction"),
        ({"prediction_id": pid, "label": "eleven"}, 422, "unknown_label"),
        ({"prediction_id": pid}, 422, "invalid_request"),
        (
            {"prediction_id": pid, "boxes": [{"label": "1", "box": [5, 5, 1, 1]}]},
            422,
            "invalid_box",
        ),
        (
            {"prediction_id": pid, "boxes": [{"label": "1", "box": [1, 2, 3]}]},
            422,
            "invalid_request",
        ),
        ({"prediction_id": pid, "label": "1", "extra": True}, 422, "invalid_request"),
        ({"label": "1"}, 422, "invalid_request"),
    ]
    for payload, status, code in cases:
        _assert_error(client.post("/v1/feedback", json=payload), status, code)
    _assert_error(
        client.post("/v1/feedback", content=b"nope", headers={"content-type": "application/json"}),
        422,
    )


def test_history_newest_first_with_feedback_filters_and_paging(store_client):
    client = store_client
    ids = [client.post("/v1/predict", files=_file(digit_png(i))).json()["id"] for i in range(3)]
    det = client.post("/v1/predict?model=shapes", files=_file(png_bytes())).json()["id"]
    client.post("/v1/feedback", json={"prediction_id": ids[1], "label": "7"})
    items = client.get("/v1/history").json()["items"]
    assert [i["id"] for i in items] == [det, *reversed(ids)]
    by_id = {i["id"]: i for i in items}
    assert by_id[ids[1]]["feedback"]["label"] == "7" and "feedback" not in by_id[ids[0]]
    assert by_id[ids[0]]["result"]["top_k"] and by_id[det]["task"] == "detect"
    assert [i["id"] for i in client.get("/v1/history?limit=2").json()["items"]] == [det, ids[2]]
    digits_only = client.get("/v1/history?model=digits").json()["items"]
    assert {i["model"] for i in digits_only} == {"digits"}
    older = client.get(f"/v1/history?before={ids[2]}").json()["items"]
    assert [i["id"] for i in older] == [ids[1], ids[0]]
    for bad in ("limit=0", "limit=501", "limit=x"):
        _assert_error(client.get(f"/v1/history?{bad}"), 422, "invalid_request")


def test_history_survives_a_restart(make_client, db_url):
    first = make_client(db_url=db_url)
    pid = first.post("/v1/predict", files=_file(digit_png())).json()["id"]
    first.__exit__(None, None, None)  # the app stops: its writer writes what it queued
    assert make_client(db_url=db_url).get("/v1/history").json()["items"][0]["id"] == pid


# ------------------------------------------------------------------ metrics
def test_metrics_count_requests_latency_batches_and_errors(client):
    client.post("/v1/predict", files=_file(digit_png()))
    client.post("/v1/predict", files=_file(b"text"))
    text = client.get("/metrics").text
    assert 'recog_http_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in text
    assert 'recog_http_requests_total{method="POST",route="/v1/predict",status="415"} 1.0' in text
    assert 'recog_errors_total{error="unsupported_media",route="/v1/predict"} 1.0' in text
    assert "recog_http_request_duration_seconds_bucket" in text
    assert 'recog_batch_size_count{model="digits"} 1.0' in text
    assert 'recog_inference_seconds_count{model="digits"}' in text
    assert 'recog_queue_depth{model="digits"} 0.0' in text


# ------------------------------------------------------------------ all three tasks
def test_serves_classification_detection_and_segmentation_at_once(
    recognizers, tmp_path, tmp_path_factory
):
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    import recog
    from recog.serve import ServeConfig, create_app

    seg = recog.load(segment_run(tmp_path_factory))
    app = create_app(
        {**recognizers, "cells": seg},
        ServeConfig(db_url=f"sqlite:///{tmp_path / 'h.db'}", warm_up=False),
    )
    with TestClient(app) as client:
        tasks = {m["name"]: m["task"] for m in client.get("/v1/models").json()["models"]}
        assert tasks == {"digits": "classify", "shapes": "detect", "cells": "segment"}
        image = png_bytes(90, 70, (40, 120, 200))
        results = {
            name: client.post(f"/v1/predict?model={name}", files=_file(image)).json()
            for name in tasks
        }
    assert "top_k" in results["digits"]["result"]
    assert "detections" in results["shapes"]["result"]
    mask = results["cells"]["result"]["segmentation"]
    assert (mask["width"], mask["height"]) == (90, 70)
    decoded = Image.open(io.BytesIO(base64.b64decode(mask["mask_png"])))
    assert decoded.size == (90, 70)
    assert abs(sum(mask["pixel_fraction"].values()) - 1.0) < 1e-3

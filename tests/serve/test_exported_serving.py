"""`recog serve` of an exported file: the same answers as the run it came from, and the
routes that need the torch model (explain, attack) refuse it in one line, never a 500."""

from __future__ import annotations

import pytest
from serving import digit_png

pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")


@pytest.fixture(scope="module")
def exported_client(runs, tmp_path_factory):
    from fastapi.testclient import TestClient

    import recog
    from recog.deploy.export import write_onnx
    from recog.serve import ServeConfig, create_app

    work = tmp_path_factory.mktemp("served-onnx")
    torch_rec = recog.load(runs["classify"])
    onnx_rec = recog.load(write_onnx(torch_rec, work / "digits.onnx"))
    app = create_app(
        {"torch": torch_rec, "onnx": onnx_rec},
        ServeConfig(db_url=f"sqlite:///{work / 'history.db'}", warm_up=False),
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_an_exported_model_answers_like_its_run(exported_client):
    for digit in (1, 4, 7):
        image = {"file": ("x.png", digit_png(digit, size=64), "image/png")}
        answers = [
            exported_client.post(f"/v1/predict?model={m}&top_k=3", files=image).json()["result"]
            for m in ("torch", "onnx")
        ]
        assert answers[0]["label"] == answers[1]["label"]
        assert [c["label"] for c in answers[0]["top_k"]] == [
            c["label"] for c in answers[1]["top_k"]
        ]
    models = {m["name"]: m for m in exported_client.get("/v1/models").json()["models"]}
    assert models["onnx"]["task"] == "classify"


@pytest.mark.parametrize("route", ["explain", "attack"])
def test_gradient_routes_refuse_an_exported_model(exported_client, route):
    image = {"file": ("x.png", digit_png(3, size=64), "image/png")}
    r = exported_client.post(f"/v1/{route}?model=onnx", files=image)
    assert 400 <= r.status_code < 500, r.text
    assert "exported" in r.json()["detail"]

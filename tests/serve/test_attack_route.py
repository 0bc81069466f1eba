"""`POST /v1/attack` (the page's adversarial toggle) and the robustness `/v1/models` lists."""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
from PIL import Image
from serving import digit_png, png_bytes


def _files(data: bytes) -> dict:
    return {"file": ("x.png", data, "image/png")}


def _image(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_attack_returns_the_adversarial_image_within_eps_and_both_answers(make_client):
    client = make_client()
    r = client.post("/v1/attack?model=digits&eps=0.2&steps=10", files=_files(digit_png(3, size=64)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "classify" and body["attack"] == "pgd" and body["eps"] == 0.2
    assert body["clean"]["label"] in [str(i) for i in range(10)]
    # a large eps moves a tiny digits model off its own answer
    assert body["changed"] and body["adversarial"]["label"] != body["clean"]["label"]
    delta = _image(body["perturbation"]).astype(float)  # magnified around mid-grey
    assert (
        delta.std() > 1
        and _image(body["adversarial_image"]).shape == _image(body["clean_image"]).shape
    )


def test_attack_a_detector_with_vanish(make_client):
    client = make_client()
    r = client.post(
        "/v1/attack?model=shapes&attack=vanish&eps=4/255", files=_files(png_bytes(64, 64))
    )
    assert r.status_code == 200, r.text
    assert r.json()["task"] == "detect" and "detections" in r.json()["adversarial"]


def test_attack_refuses_what_it_cannot_do(make_client):
    client = make_client()
    data = digit_png(3, size=64)
    assert client.post("/v1/attack?attack=square", files=_files(data)).status_code == 422
    r = client.post("/v1/attack?eps=2", files=_files(data))
    assert r.status_code == 422 and "eps" in r.text
    assert client.post("/v1/attack?steps=500", files=_files(data)).status_code == 422
    assert client.post("/v1/attack?model=nope", files=_files(data)).status_code == 404
    r = client.post("/v1/attack?model=digits", files=_files(b"not an image at all"))
    assert r.status_code in (400, 415), r.text
    assert client.post("/v1/predict?model=digits", files=_files(data)).status_code == 200


def test_models_list_the_robustness_the_last_attack_left(runs, tmp_path):
    import recog
    from recog.serve.routes.models import model_info

    rec = recog.load(runs["classify"])
    assert model_info("digits", rec, 8).robustness is None
    save = rec.run_dir / "robustness"
    try:
        rec.attack(eps=[0.05, 0.2], steps=5, images=32)
        info = model_info("digits", rec, 8).robustness
        assert info is not None and info.metric == "top1"
        assert [p.eps for p in info.robust] == [0.05, 0.2] and info.robust[-1].value <= info.clean
        # a damaged record is no robustness, not a failed server
        (save / "robustness.json").write_text(json.dumps({"attack": 1}))
        assert model_info("digits", rec, 8).robustness is None
    finally:  # the session's run is shared with the other server tests
        shutil.rmtree(save, ignore_errors=True)

"""`POST /v1/explain`: heat maps with their faithfulness through the API, and its refusals."""

from __future__ import annotations

import base64
import io

from PIL import Image
from serving import digit_png, png_bytes


def _files(data: bytes) -> dict:
    return {"file": ("x.png", data, "image/png")}


def test_explain_returns_an_overlay_and_scores_for_a_classifier(make_client):
    client = make_client()
    r = client.post("/v1/explain?model=digits&method=gradcam", files=_files(digit_png(3, size=64)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "gradcam" and body["task"] == "classify"
    assert len(body["maps"]) == 1
    m = body["maps"][0]
    assert m["target"] in [str(i) for i in range(10)]
    for key in ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc"):
        assert 0.0 <= m[key] <= 1.0
    assert m["overlay"].startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(m["overlay"].split(",", 1)[1])))
    assert png.size[0] > 8
    # asking for a class explains that class
    r = client.post("/v1/explain?model=digits&target=7", files=_files(digit_png(3, size=64)))
    assert r.status_code == 200 and r.json()["maps"][0]["target"] == "7"


def test_explain_a_detector_gives_one_map_per_shown_box(make_client):
    client = make_client()
    r = client.post("/v1/explain?model=shapes&method=drise", files=_files(png_bytes(64, 64)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "detect"
    assert all(m["box"] is not None and len(m["box"]) == 4 for m in body["maps"])


def test_explain_refuses_what_it_cannot_do(make_client):
    client = make_client()
    data = digit_png(3, size=64)
    assert client.post("/v1/explain?method=voodoo", files=_files(data)).status_code == 422
    assert client.post("/v1/explain?model=nope", files=_files(data)).status_code == 404
    r = client.post("/v1/explain?model=digits&target=giraffe", files=_files(data))
    assert r.status_code == 422 and "giraffe" in r.text
    r = client.post("/v1/explain?model=digits", files=_files(b"not an image at all"))
    assert r.status_code in (400, 415), r.text
    # the server still answers predictions afterwards
    assert client.post("/v1/predict?model=digits", files=_files(data)).status_code == 200

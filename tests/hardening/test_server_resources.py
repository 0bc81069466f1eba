"""What one request may cost (issue 33): odd image shapes, heavy work, abandoned work, remote reads, resume files.

The server tests run a TestClient against the tiny runs tests/serving.py
trains once per session (a digits classifier, a shapes U-Net).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image
from serving import digit_png, png_bytes, segment_run, trained_runs

import recog
from recog.cli import main
from recog.errors import RecogError
from recog.serve import ServeConfig, create_app
from recog.serve.limits import Limits


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return {**trained_runs(tmp_path_factory), "segment": segment_run(tmp_path_factory)}


@pytest.fixture(scope="module")
def strip(tmp_path_factory) -> Path:
    """A 38 KB PNG of 39,000,000 x 1 pixels: under the pixel caps, 120 GB once resized."""
    path = tmp_path_factory.mktemp("strip") / "strip.png"
    Image.new("L", (39_000_000, 1)).save(path)
    return path


@pytest.fixture
def make_client(runs, tmp_path):
    """make_client(models, **Limits fields) -> a started TestClient serving `models`."""
    from fastapi.testclient import TestClient

    clients = []

    def make(models: dict[str, str], **limits):
        served = {name: recog.load(runs[kind]) for name, kind in models.items()}
        config = ServeConfig(
            db_url=f"sqlite:///{tmp_path / f'h{len(clients)}.db'}",
            warm_up=False,
            limits=Limits(**limits),
        )
        client = TestClient(create_app(served, config), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _post(client, route: str, data: bytes, query: str = ""):
    return client.post(f"{route}?{query}", content=data, headers={"content-type": "image/png"})


# ------------------------------------------------------------ 3: absurd aspect ratios
def test_a_strip_image_is_refused_by_every_route_in_one_json_line(make_client, strip):
    client = make_client({"digits": "classify"})
    data = strip.read_bytes()
    for route in ("/v1/predict", "/v1/explain", "/v1/attack"):
        r = _post(client, route, data)
        assert r.status_code == 422, (route, r.status_code, r.text)
        assert r.json() == {
            "error": "bad_shape",
            "detail": "the image is 39000000x1 pixels; recog reads sides up to 65,535 and "
            "aspect ratios up to 64:1",
        }


def test_a_strip_image_is_refused_by_the_cli_and_the_api(runs, strip, capsys):
    before = _sha(strip)
    assert main(["predict", str(runs["classify"]), str(strip)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"recog: error: {strip}: the image is 39000000x1 pixels; recog reads sides up to "
        "65,535 and aspect ratios up to 64:1"
    ]
    assert _sha(strip) == before
    with pytest.raises(RecogError, match=r"strip.png: the image is 39000000x1 pixels"):
        recog.load(runs["classify"]).predict(strip)


def test_a_long_panorama_within_the_ratio_is_still_read(runs, tmp_path):
    wide = tmp_path / "wide.png"
    Image.new("RGB", (640, 10)).save(wide)  # 64:1 exactly
    recog.load(runs["classify"]).predict(wide)


# ------------------------------------------------- 2: heavy work bounded, in memory too
def test_explanations_beyond_the_slots_are_answered_503_with_retry_after(make_client):
    client = make_client({"digits": "classify"}, heavy_slots=1, heavy_wait_s=0.2)
    gate = client.app.state.recog.heavy
    gate._free.acquire()  # one explanation in progress
    try:
        for route in ("/v1/explain", "/v1/attack"):
            r = _post(client, route, digit_png(3))
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "busy" and r.headers["retry-after"] == "1"
    finally:
        gate.leave()
    assert _post(client, "/v1/explain", digit_png(3)).status_code == 200


def test_concurrent_explanations_decode_one_at_a_time(make_client, monkeypatch):
    import recog.serve.routes.heavy as route  # the explain and attack routes' shared frame

    client = make_client({"digits": "classify"}, heavy_slots=1, heavy_wait_s=60)
    lock, active, peak = threading.Lock(), [0], [0]
    decode = route.heavy_image

    def counted(*args, **kwargs):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.1)  # long enough for the others to arrive
        try:
            return decode(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(route, "heavy_image", counted)
    big = png_bytes(3000, 2000)  # 6 MP: decoded, then brought to the model's 16 px
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: _post(client, "/v1/explain", big).status_code, "abcd"))
    assert codes == [200] * 4 and peak[0] == 1


def test_an_image_over_the_heavy_pixel_cap_is_refused_before_decoding(make_client):
    client = make_client({"digits": "classify"}, heavy_pixels=1_000_000)
    data = png_bytes(1001, 1000)
    r = _post(client, "/v1/explain", data)
    assert r.status_code == 413 and r.json()["error"] == "too_many_pixels", r.text
    assert "1,001,000 pixels; the limit is 1,000,000" in r.json()["detail"]
    assert _post(client, "/v1/predict", data).status_code == 200  # predict's own cap is higher


# ------------------------------------- 4: segmentation in time, timed-out work cancelled
def test_segmentation_explain_and_attack_finish_at_default_settings(make_client):
    client = make_client({"cells": "segment"})
    photo = png_bytes(640, 480)
    for route in ("/v1/explain", "/v1/attack"):
        r = _post(client, route, photo)
        assert r.status_code == 200, (route, r.text)
        assert (r.json()["image"]["width"], r.json()["image"]["height"]) == (640, 480)


def test_timed_out_explanations_stop_and_free_their_threads(make_client):
    client = make_client({"cells": "segment"}, predict_timeout_s=0.3, heavy_wait_s=30)
    photo = png_bytes(640, 480)
    assert _post(client, "/v1/predict", png_bytes(64, 48)).status_code == 200  # pool started
    baseline = threading.active_count()
    for _ in range(4):
        r = _post(client, "/v1/explain", photo, "method=occlusion")
        assert r.status_code == 504 and r.json()["error"] == "timeout", r.text
    deadline = time.monotonic() + 3
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= baseline
    assert not [t for t in threading.enumerate() if t.name == "recog-explanation"]


# ------------------------------------------- 5: remote reads capped and time-limited
class _Hostile(BaseHTTPRequestHandler):
    """/chunked.png: 200 MB with no Content-Length; /trickle.png: one byte every 0.2 s."""

    protocol_version = "HTTP/1.1"
    sent = 0

    def log_message(self, *args) -> None:  # quiet
        pass

    def _head(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if self.path == "/chunked.png":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", "1000")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._head()

    def do_GET(self) -> None:
        self._head()
        try:
            if self.path == "/chunked.png":
                block = b"\x89PNG" + b"\0" * (64 * 1024 - 4)
                for _ in range(200 * 16):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                    type(self).sent += len(block)
                self.wfile.write(b"0\r\n\r\n")
            else:
                for _ in range(1000):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def hostile_http():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hostile.sent = 0
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_url_without_content_length_is_cut_at_the_byte_cap(runs, hostile_http, tmp_path):
    from recog.data.images import MAX_BYTES

    url, out = f"{hostile_http}/chunked.png", tmp_path / "rows.jsonl"
    assert main(["predict", str(runs["classify"]), url, "--out", str(out)]) == 1
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["path"] == url
    assert row["error"] == f"{url}: the image is over {MAX_BYTES:,} bytes (the limit)"
    assert _Hostile.sent < 1.5 * MAX_BYTES  # it stopped reading, it did not drain 200 MB


def test_a_trickling_server_fails_its_image_within_the_time_limit(hostile_http, monkeypatch):
    from recog.batch import sources

    monkeypatch.setattr(sources, "READ_TIMEOUT_S", 1.0)
    url = f"{hostile_http}/trickle.png"
    start = time.monotonic()
    with pytest.raises(RecogError, match=r"trickle.png: not read within 1 s; refused"):
        sources.read_input(url)
    assert time.monotonic() - start < 5


# ------------------------------------------------- 6: a resume file that is no file
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/full"])
def test_resume_refuses_a_device_in_one_line(runs, tmp_path, capsys, device):
    if not Path(device).exists():
        pytest.skip(f"no {device}")
    image = tmp_path / "a.png"
    image.write_bytes(digit_png(3))
    out = tmp_path / "rows.jsonl"
    out.symlink_to(device)
    code = main(["predict", str(runs["classify"]), str(image), "--out", str(out), "--resume"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"recog: error: {out}: not a regular file (a device, a pipe or a folder); refused"
    ]
    assert out.is_symlink() and str(out.readlink()) == device

"""The page's camera mode in a real browser: headless chromium with a fake camera playing a clip
made here, against a real `recog serve` of a small detector and a classifier.

Chromium's `--use-file-for-fake-video-capture` plays a .y4m file as the camera, and
`--use-fake-ui-for-media-stream` grants the page the camera without a prompt.  The test checks
that answers appear over the live picture, that each one is what `/v1/predict` answers for the
very frame the page sent, that the frames/s and latency figures are shown, and that pause stops
the frames.  Screenshots go to $RECOG_SCREENSHOTS when set (else the test's temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serving import CHROMIUM, live_server, trained_runs

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (install it: apt-get install -y chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")


def write_y4m(path: Path, frames: int = 30, width: int = 320, height: int = 240) -> Path:
    """A clip of a red square and a blue disc moving over grey, as YUV 4:2:0 (Y4M)."""
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            rgb = np.full((height, width, 3), 128, dtype=np.uint8)
            x = 20 + (i * 6) % (width - 100)
            rgb[60:140, x : x + 80] = (220, 30, 30)
            yy, xx = np.ogrid[:height, :width]
            disc = (yy - 170) ** 2 + (xx - (width - x - 40)) ** 2 < 35**2
            rgb[disc] = (30, 60, 220)
            y, cb, cr = Image.fromarray(rgb).convert("YCbCr").split()
            half = (width // 2, height // 2)
            out.write(b"FRAME\n")
            for plane in (y, cb.resize(half, Image.BILINEAR), cr.resize(half, Image.BILINEAR)):
                out.write(np.asarray(plane, dtype=np.uint8).tobytes())
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = trained_runs(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("camera-browser")
    with live_server([runs["classify"], runs["detect"]], tmp) as live:
        yield live


@pytest.fixture(scope="module")
def camera_browser(tmp_path_factory):
    clip = write_y4m(tmp_path_factory.mktemp("clip") / "camera.y4m")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={clip}",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(camera_browser, server):
    context = camera_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-state=ready]", timeout=30_000)
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"


def _answers(page) -> int:
    return page.evaluate(
        "() => window.recogCamera.last ? window.recogCamera.last.reply.answered : 0"
    )


def _start(page, model: str) -> None:
    page.select_option("#model", model)
    # the lowest score 0: a 1-epoch model's boxes are faint, and every candidate must be drawn
    page.eval_on_selector(
        "#camera-conf", "e => { e.value = 0; e.dispatchEvent(new Event('input')); }"
    )
    page.click("#camera-start")
    page.wait_for_selector("body[data-camera=live]", timeout=20_000)
    page.wait_for_function(
        "() => window.recogCamera.last && window.recogCamera.last.reply.answered >= 5",
        timeout=60_000,
    )


def _same_as_predict(page, model: str, conf: str) -> tuple[dict, dict]:
    """(the camera's last answer, /v1/predict's answer for the same frame bytes)."""
    return page.evaluate(
        """async ([model, conf]) => {
            const last = window.recogCamera.last;
            const response = await fetch(`/v1/predict?model=${model}&conf=${conf}`, {
              method: "POST", body: last.blob, headers: {"Content-Type": "application/octet-stream"},
            });
            return [last.reply, await response.json()];
        }""",
        [model, conf],
    )


def _check_resized(page, model: str, reply: dict) -> None:
    """The frame was shrunk to the model's input size in the browser before it was sent."""
    size, video = page.evaluate(
        "(m) => [model(m).input_size, [$('video').videoWidth, $('video').videoHeight]]", model
    )
    scale = min(1.0, size / max(video))
    assert reply["image"]["width"] == max(1, round(video[0] * scale)), (size, video, reply["image"])
    assert max(reply["image"]["width"], reply["image"]["height"]) <= max(size, 1)


def _screenshot(page, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("RECOG_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_camera_draws_detections_over_the_live_picture(page, tmp_path):
    _start(page, "shapes-yolo")
    reply, expected = _same_as_predict(page, "shapes-yolo", "0")
    assert reply["task"] == "detect"
    got, want = reply["result"]["detections"], expected["result"]["detections"]
    assert got, "the detector drew nothing at conf 0"
    assert [d["label"] for d in got] == [d["label"] for d in want]
    assert np.allclose([d["box"] for d in got], [d["box"] for d in want], atol=0.5)
    assert np.allclose([d["score"] for d in got], [d["score"] for d in want], atol=1e-3)
    assert reply["image"]["width"] == expected["image"]["width"]
    _check_resized(page, "shapes-yolo", reply)
    assert page.locator("#detections li").count() == len(got)
    stats = page.locator("#camera-stats")
    assert "frames/s" in stats.inner_text()
    assert float(stats.get_attribute("data-fps")) > 0
    assert float(stats.get_attribute("data-p50")) > 0
    # the canvas shows the moving picture, not a still: two paints a moment apart differ
    first = page.eval_on_selector("#canvas", "c => c.toDataURL()")
    page.wait_for_timeout(600)
    assert page.eval_on_selector("#canvas", "c => c.toDataURL()") != first
    _screenshot(page, "camera-detect.png", tmp_path)
    # pause: no more frames answered
    page.click("#camera-pause")
    page.wait_for_timeout(500)
    paused = _answers(page)
    page.wait_for_timeout(1500)
    assert _answers(page) <= paused + 1
    page.click("#camera-pause")
    page.wait_for_function(f"() => window.recogCamera.last.reply.answered > {paused + 1}")
    page.click("#camera-start")  # stop
    assert page.get_attribute("body", "data-camera") == "off"


def test_camera_labels_a_classifier_frame_as_predict_does(page, tmp_path):
    _start(page, "digits-cnn")
    reply, expected = _same_as_predict(page, "digits-cnn", "0")
    assert reply["task"] == "classify"
    got, want = reply["result"]["top_k"], expected["result"]["top_k"]
    assert [c["label"] for c in got] == [c["label"] for c in want]
    assert np.allclose([c["score"] for c in got], [c["score"] for c in want], atol=1e-4)
    assert page.locator("#classes li").count() == len(got) > 0
    _check_resized(page, "digits-cnn", reply)
    _screenshot(page, "camera-classify.png", tmp_path)

"""The web page in a real browser: Playwright drives Debian's headless chromium against `recog serve`.

Skipped with the reason when /usr/bin/chromium (apt-get install chromium) or
the playwright package is missing; `make test` installs chromium when it can.
Screenshots are saved in the test's temporary folder (printed on failure).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from serving import CHROMIUM, chromium, digit_png, jpeg_bytes, live_server, png_bytes, trained_runs

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (install it: apt-get install -y chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = trained_runs(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("browser")
    with live_server([runs["classify"], runs["detect"]], tmp, "--keep-images") as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    external: list[str] = []
    page.on(
        "request",
        lambda req: (
            not req.url.startswith((server.url, "data:", "blob:")) and external.append(req.url)
        ),
    )
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-state=ready]", timeout=30_000)
    yield page
    context.close()
    assert not external, f"the page loaded something from elsewhere: {external}"
    assert not errors, f"errors in the page: {errors}"


def _upload(page, path: Path) -> None:
    page.set_input_files("#file", str(path))
    page.wait_for_selector("body[data-state=done]", timeout=30_000)


def test_classification_upload_shows_bars_latency_history_and_takes_feedback(
    page, server, tmp_path
):
    image = tmp_path / "digit.png"
    image.write_bytes(digit_png(4, size=96))
    page.select_option("#model", "digits-cnn")
    page.fill("#topk", "3")
    _upload(page, image)
    assert page.get_attribute("body", "data-task") == "classify"
    bars = page.locator("#classes li")
    assert bars.count() == 3
    first_label = bars.first.locator(".name").inner_text()
    assert first_label in [str(i) for i in range(10)]
    assert page.locator("#classes .pct").first.inner_text().endswith("%")
    fill = page.locator("#classes .fill").first.evaluate("e => e.getBoundingClientRect().width")
    track = page.locator("#classes .track").first.evaluate("e => e.getBoundingClientRect().width")
    share = float(page.locator("#classes .pct").first.inner_text().rstrip("%")) / 100
    assert abs(fill / track - share) < 0.02  # the bar is drawn as long as the confidence
    assert "server" in page.inner_text("#latency") and "ms" in page.inner_text("#latency")
    assert first_label in page.inner_text("#status")
    page.wait_for_function("document.querySelectorAll('#history-list li').length >= 1")
    page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)

    # "Wrong?": choose another class and send it
    page.click("#wrong")
    right = "9" if first_label != "9" else "8"
    page.select_option("#feedback-class", right)
    page.click("#feedback-send")
    page.wait_for_selector("body[data-feedback=saved]")
    assert "saved" in page.inner_text("#status")
    import httpx

    items = httpx.get(server.url + "/v1/history?limit=50").json()["items"]
    corrected = [i for i in items if i.get("feedback")]
    assert any(i["feedback"]["label"] == right for i in corrected)


def test_detection_upload_draws_the_result(page, server, tmp_path):
    image = tmp_path / "scene.jpg"
    image.write_bytes(jpeg_bytes(160, 120))
    page.select_option("#model", "shapes-yolo")
    _upload(page, image)
    assert page.get_attribute("body", "data-task") == "detect"
    items = page.locator("#detections li")
    assert items.count() >= 1  # the boxes, or "No objects found."
    width, height = page.locator("#canvas").evaluate("c => [c.width, c.height]")
    assert width == 640 and height == 480  # small images are drawn larger, same aspect
    page.screenshot(path=str(tmp_path / "detect.png"), full_page=True)


def _mock_predict(page, response: dict) -> None:
    page.route(
        "**/v1/predict*",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(response)
        ),
    )


def _pixel(page, x: float, y: float, image_width: int) -> list[int]:
    """The canvas pixel at (x, y) in the uploaded image's pixels."""
    return page.evaluate(
        f"""() => {{
          const c = document.getElementById('canvas');
          const s = c.width / {image_width};
          return Array.from(c.getContext('2d').getImageData(
            Math.round({x} * s), Math.round({y} * s), 1, 1).data);
        }}"""
    )


def test_boxes_are_drawn_with_labels_and_scores(page, tmp_path):
    """Drawing checked on a known answer (a 1-epoch detector finds little): the page's part alone."""
    image = tmp_path / "white.png"
    image.write_bytes(png_bytes(200, 100, (255, 255, 255)))
    boxes = [
        {"label": "circle", "score": 0.91, "box": [20, 20, 80, 70]},
        {"label": "square", "score": 0.55, "box": [120, 10, 190, 90]},
    ]
    _mock_predict(
        page,
        {
            "id": "f" * 32,
            "model": "shapes-yolo",
            "task": "detect",
            "image": {"sha256": "0" * 64, "width": 200, "height": 100},
            "result": {"detections": boxes},
            "latency_ms": 3.2,
        },
    )
    page.select_option("#model", "shapes-yolo")
    _upload(page, image)
    rows = page.locator("#detections li")
    assert rows.count() == 2
    assert "circle" in rows.nth(0).inner_text() and "91.0%" in rows.nth(0).inner_text()
    assert _pixel(page, 50, 70, 200)[:3] != [255, 255, 255]  # the first box's bottom edge
    assert _pixel(page, 100, 95, 200)[:3] == [255, 255, 255]  # outside every box
    page.screenshot(path=str(tmp_path / "boxes.png"))

    # the correction form lists the boxes for editing, and adds one
    page.click("#wrong")
    assert page.locator("#box-rows li").count() == 2
    page.click("#add-box")
    assert page.locator("#box-rows li").count() == 3


def test_segmentation_mask_overlay_legend_and_opacity(page, tmp_path):
    from PIL import Image

    image = tmp_path / "white.png"
    image.write_bytes(png_bytes(40, 20, (255, 255, 255)))
    mask = Image.new("L", (40, 20), 0)
    mask.paste(1, (0, 0, 20, 20))  # left half: class 1
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    _mock_predict(
        page,
        {
            "id": "e" * 32,
            "model": "seg",
            "task": "segment",
            "image": {"sha256": "0" * 64, "width": 40, "height": 20},
            "result": {
                "segmentation": {
                    "width": 40,
                    "height": 20,
                    "mask_png": base64.b64encode(buf.getvalue()).decode(),
                    "pixel_fraction": {"background": 0.5, "circle": 0.5},
                }
            },
            "latency_ms": 2.0,
        },
    )
    # a segmentation model as /v1/models would list it (the served runs have none)
    page.evaluate(
        """() => {
          state.models.push({name: 'seg', task: 'segment', architecture: 'unet',
                             classes: ['background', 'circle'], input_size: 64, metrics: {}});
          document.getElementById('model').append(new Option('seg', 'seg'));
          document.getElementById('model').value = 'seg';
        }"""
    )
    _upload(page, image)
    assert page.locator("#legend li").count() >= 1
    assert "circle" in page.inner_text("#legend")
    assert page.is_visible("#opacity")
    left, right = _pixel(page, 5, 10, 40), _pixel(page, 35, 10, 40)
    assert left[:3] != [255, 255, 255] and right[:3] == [255, 255, 255]
    page.eval_on_selector(
        "#opacity", "e => { e.value = '0'; e.dispatchEvent(new Event('input')); }"
    )
    assert _pixel(page, 5, 10, 40)[:3] == [255, 255, 255]


def test_phone_sized_viewport_has_no_sideways_scrolling(browser, server, tmp_path):
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-state=ready]")
    image = tmp_path / "d.png"
    image.write_bytes(digit_png(1, size=64))
    _upload(page, image)
    assert page.locator("#classes li").count() >= 1
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"horizontal scrolling on a phone: {overflow}px"
    canvas_width = page.locator("#canvas").evaluate("c => c.getBoundingClientRect().width")
    assert canvas_width <= 375
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    context.close()


def test_keyboard_alone_reaches_the_controls_and_uploads(page, tmp_path):
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.id"))
    assert {"model", "topk", "pick"} <= set(reached)
    while page.evaluate("() => document.activeElement.id") != "pick":
        page.keyboard.press("Shift+Tab")
    # Enter on the focused button opens the file dialog (the native dialog itself is
    # not driven: Chromium's file-chooser interception is unreliable across contexts)
    page.evaluate(
        """() => document.getElementById('file').addEventListener('click', (e) => {
             window.fileDialogOpened = true; e.preventDefault(); })"""
    )
    page.keyboard.press("Enter")
    assert page.evaluate("() => window.fileDialogOpened") is True
    image = tmp_path / "d.png"
    image.write_bytes(digit_png(1, size=64))
    page.set_input_files("#file", str(image))
    page.wait_for_selector("body[data-state=done]")
    assert page.locator("#classes li").count() >= 1


@pytest.fixture(scope="module")
def detect_server(tmp_path_factory):
    """A detection run whose `map` and `map50` differ (a 1-epoch run scores 0 on both):
    a copy of the trained run with those two numbers set in its metrics.json."""
    import shutil

    run = tmp_path_factory.mktemp("browser-metric") / "shapes-yolo"
    shutil.copytree(trained_runs(tmp_path_factory)["detect"], run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update(map=0.4321, map50=0.8765)
    (run / "metrics.json").write_text(json.dumps(metrics))
    with live_server([run], run.parent) as live:
        yield live


def test_detection_model_shows_the_main_metric_its_task_defines(browser, detect_server):
    """The page shows what /v1/models names as the main metric (DetectTask: `map`), not map50."""
    import httpx

    (info,) = httpx.get(detect_server.url + "/v1/models").json()["models"]
    assert info["main_metric"] == {"name": "map", "value": 0.4321}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(detect_server.url + "/")
    page.wait_for_selector("body[data-state=ready]", timeout=30_000)
    shown = page.inner_text("#model-info")
    context.close()
    assert "map 43.2%" in shown, shown
    assert "map50" not in shown and "87.7%" not in shown, shown
    assert not errors, f"errors in the page: {errors}"


def test_explain_toggle_draws_a_heat_map_with_its_scores(page, tmp_path):
    """With "Explain" on, the page asks /v1/explain and draws the heat map over the (grey)
    digit: the screenshot of the map holds the heat scale's saturated colours."""
    from PIL import Image

    image = tmp_path / "digit.png"
    image.write_bytes(digit_png(2, size=96))
    page.select_option("#model", "digits-cnn")
    page.check("#explain")
    _upload(page, image)
    page.wait_for_selector("#explanations img.heatmap", timeout=60_000)
    page.wait_for_function(
        "document.querySelector('#explanations img.heatmap').complete"
        " && document.querySelector('#explanations img.heatmap').naturalWidth > 0"
    )
    caption = page.inner_text("#explanations figcaption")
    assert "deletion" in caption and "insertion" in caption and "random" in caption
    shot = tmp_path / "explain.png"
    page.locator("#explanations img.heatmap").first.screenshot(path=str(shot))
    page.screenshot(path=str(tmp_path / "explain-page.png"), full_page=True)
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        pixels = list(rgb.getdata())
    coloured = sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) > 80)
    assert coloured / len(pixels) > 0.2, f"no heat map drawn (see {shot})"


def test_attack_toggle_shows_the_adversarial_image_and_its_answer(page, tmp_path):
    """With "Attack" on, the page asks /v1/attack and shows the clean and adversarial images
    with their answers and the magnified perturbation (a colourful noise image)."""
    from PIL import Image

    image = tmp_path / "digit.png"
    image.write_bytes(digit_png(2, size=96))
    page.select_option("#model", "digits-cnn")
    page.select_option("#attack-eps", "16/255")
    page.check("#attack")
    _upload(page, image)
    page.wait_for_selector("#adversarial p.verdict", timeout=60_000)
    verdict = page.inner_text("#adversarial p.verdict")
    assert "At eps 16/255 the answer" in verdict, verdict
    assert page.locator("#adversarial img").count() == 3
    page.wait_for_function(
        "[...document.querySelectorAll('#adversarial img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    shot = tmp_path / "perturbation.png"
    page.locator("#adversarial img").nth(2).screenshot(path=str(shot))
    with Image.open(shot) as img:
        pixels = list(img.convert("RGB").getdata())
    grey = sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) < 10)
    assert grey / len(pixels) < 0.9, f"no perturbation drawn (see {shot})"

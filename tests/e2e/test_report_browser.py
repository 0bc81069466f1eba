"""report.html of a tiny run of each task, opened in a real browser (Playwright + Debian's chromium).

The runs are the session's shared ones (tests/serving.py: a 1-epoch cnn on
digits, yolo_n on shapes, U-Net on shapes).  Each report must show, visibly,
the sections a first-time reader looks for: metrics named in words, the
per-class column named by the task's metric, the training curves with a
learning-rate panel, the label statistics, the training samples, and per
task the F1-confidence curve (detection) or image / truth / prediction rows
with a colour legend (segmentation).  Full-page screenshots are saved in the
test's temporary folder.  Skipped when chromium or playwright is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from serving import CHROMIUM, chromium, segment_run, trained_runs

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (install it: apt-get install -y chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")

#: the per-class column's heading each task gives (Task.scores.labels["per_class"])
PER_CLASS = {"classify": "F1", "detect": "AP", "segment": "IoU"}
#: a metric card each report names in words
CARD = {"classify": "top-1 accuracy", "detect": "mAP@0.5", "segment": "mIoU"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {**trained_runs(tmp_path_factory), "segment": segment_run(tmp_path_factory)}


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _open(browser, report: Path):
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(report.resolve().as_uri())
    page.wait_for_load_state("load")
    return context, page, requests


def _visible(page, selector: str) -> None:
    node = page.locator(selector)
    assert node.count() == 1, f"{selector}: {node.count()} found"
    node.scroll_into_view_if_needed()
    assert node.is_visible(), f"{selector} is not visible"


def _image_shown(page, selector: str) -> None:
    _visible(page, selector)
    width = page.locator(selector).evaluate("img => img.complete ? img.naturalWidth : 0")
    box = page.locator(selector).bounding_box()
    assert width > 100 and box and box["width"] > 100 and box["height"] > 50, selector


@pytest.mark.parametrize("task", ["classify", "detect", "segment"])
def test_report_shows_the_new_sections(browser, runs, task, tmp_path):
    report = runs[task] / "report.html"
    context, page, requests = _open(browser, report)
    try:
        for section in (
            "metrics",
            "run-facts",
            "per-class",
            "training-curves",
            "label-statistics",
            "training-samples",
            "sample-predictions",
        ):
            _visible(page, f"h2#{section}")
        # metrics in words, bookkeeping apart from them
        cards = page.locator(".cards .card .name").all_inner_texts()
        assert CARD[task] in cards, cards
        assert not any(key in cards for key in ("num_samples", "train_seconds", "epochs_run"))
        assert "training seconds" in page.locator("h2#run-facts + table").inner_text()
        assert "%" not in page.locator(".cards").inner_text()  # fractions, as metrics.json
        # the per-class column is named by the task's metric
        header = page.locator("#per-class-table tr").first.locator("th").all_inner_texts()
        assert header[:2] == ["class", PER_CLASS[task]], header
        # curves with a learning-rate panel; the validation loss is a loss, not `nll`
        _image_shown(page, "#figure-curves img")
        panels = page.locator("#figure-curves figcaption").inner_text()
        assert "learning rate" in panels and "loss" in panels and "nll" not in panels.lower()
        _image_shown(page, "#figure-labels img")
        _image_shown(page, "#figure-train-batch img")
        _image_shown(page, "#figure-samples img")
        for name in ("curves.png", "labels.png", "train_batch.png", "samples.png"):
            assert (runs[task] / "plots" / name).is_file(), name
        if task == "detect":
            _image_shown(page, "#figure-f1-confidence img")
            assert (runs[task] / "plots" / "f1_confidence.png").is_file()
        if task == "segment":
            caption = page.locator("#figure-samples figcaption").inner_text()
            assert "truth" in caption and "prediction" in caption
            _visible(page, "ul#legend")
            names = page.locator("ul#legend li").all_inner_texts()
            assert {"circle", "square", "triangle"} <= set(names), names
            assert page.locator("ul#legend .swatch").count() == len(names)
        page.screenshot(path=str(tmp_path / f"report-{task}.png"), full_page=True)
    finally:
        context.close()
    # one self-contained file: nothing but the file itself and its inline images
    assert all(url.startswith(("file://", "data:")) for url in requests), requests

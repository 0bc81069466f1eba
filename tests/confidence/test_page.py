"""The web page shows an image the run's rule rejects as "unknown", not as a low-confidence class.

A real browser (Playwright, Debian's chromium) against `recog serve` on a
calibrated copy of the confidence tests' digits run; slow (a server start).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from serving import live_server

from recog.cli import main

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")


def test_the_page_says_unknown(digits_run, noise_images, digit_images, tmp_path):
    run = tmp_path / "digits-cnn"
    shutil.copytree(digits_run, run)
    assert main(["calibrate", str(run), "--device", "cpu"]) == 0
    with (
        live_server([run], tmp_path) as server,
        sync_api.sync_playwright() as p,
    ):
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-state=ready]", timeout=30_000)
        page.set_input_files("#file", str(noise_images / "noise00.png"))
        page.wait_for_selector("body[data-state=done][data-unknown=true]", timeout=30_000)
        status = page.inner_text("#status")
        assert status.startswith("unknown") and "%" not in status
        assert page.locator("#classes li").first.inner_text().startswith("unknown")
        page.screenshot(path=str(tmp_path / "unknown.png"), full_page=True)
        page.set_input_files("#file", str(sorted(digit_images.glob("*.png"))[0]))
        page.wait_for_selector("body[data-state=done][data-unknown=false]", timeout=30_000)
        assert page.inner_text("#status")[0] in "0123456789"
        browser.close()
    assert not errors, errors

"""Every HTML page recog writes shows a hostile class name as text, never as markup (issue 33).

A CSV list whose labels are script payloads goes through the commands that
write pages (train's report.html, explain's and attack's sections of it, the
doctor's doctor.html); each page is parsed with html.parser and must hold no
element or attribute the payloads would inject.
"""

from __future__ import annotations

import csv
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recog.cli import main

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = '"><script>alert(1)</script>'
PAYLOADS = (IMG, SCRIPT)


class _Tags(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert(page: Path) -> str:
    """The page's text, after checking no payload became an element or an attribute."""
    parser = _Tags()
    parser.feed(page.read_text(encoding="utf-8"))
    injected = [
        (tag, attrs)
        for tag, attrs in parser.tags
        if tag == "script"
        or (tag == "img" and attrs.get("src") == "x")
        or any(name.startswith("on") for name in attrs)
    ]
    assert not injected, f"{page.name}: markup from a class name: {injected[:3]}"
    return "".join(parser.text)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    """A CSV list of 2 x 16 small images labelled with the payloads, a 1-epoch run on it,
    its explanations and attack sections, and a doctor page of it."""
    root = tmp_path_factory.mktemp("hostile") / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for k, label in enumerate(PAYLOADS):
        for i in range(16):
            pixels = rng.integers(0, 60, (24, 24, 3), dtype=np.uint8)
            pixels[..., k] += 180  # a class tells itself by colour
            name = f"img{k}_{i}.png"
            Image.fromarray(pixels).save(root / name)
            rows.append((name, label))
    rows[0] = (rows[0][0], PAYLOADS[1])  # one flipped label for the doctor to find
    with (root / "list.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    run = root.parent / "run"
    tiny = ["--model", "cnn", "--model-args", "width=8", "--img-size", "16"]
    assert main(["train", "--data", str(root / "list.csv"), *tiny, "--batch-size", "32",
                 "--epochs", "1", "--out", str(run)]) == 0  # fmt: skip
    assert main(["explain", str(run), "--score", "--images", "2", "--steps", "4"]) == 0
    assert main(["attack", str(run), "--images", "4", "--eps", "0.1", "--steps", "2"]) == 0
    doctor = root.parent / "doctor"
    assert main(["data", "doctor", str(root / "list.csv"), "--out", str(doctor),
                 "--fold-steps", "20"]) == 0  # fmt: skip
    return {"report": run / "report.html", "doctor": doctor / "doctor.html"}


def test_the_run_report_shows_class_names_as_text(hostile):
    page = hostile["report"].read_text(encoding="utf-8")
    assert "section:explanations" in page and "section:robustness" in page
    text = assert_inert(hostile["report"])
    assert IMG in text and SCRIPT in text  # shown, as text


def test_doctor_html_shows_class_names_as_text(hostile):
    assert_inert(hostile["doctor"])


def test_doctor_label_error_captions_are_escaped(tmp_path):
    """The captions of label errors (given -> suggested) carried the names unescaped."""
    from recog.data.inventory import Finding
    from recog.doctor.page import write_page

    finding = Finding(
        "label-error", ["a.png"], "a.png looks mislabelled", "train", 0.9,
        {"given": IMG, "suggested": SCRIPT},
    )  # fmt: skip
    write_page(tmp_path, {"data": SCRIPT, "task": "classify"}, [finding], {})
    text = assert_inert(tmp_path / "doctor.html")
    assert f"given: {IMG} → suggested: {SCRIPT}" in text


def test_the_served_page_inserts_text_with_text_content():
    """The web page builds its elements from the server's JSON: never as HTML."""
    import recog.serve.routes.page as page

    script = (page.STATIC / "app.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in script

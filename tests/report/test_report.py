"""Report plots are real PNGs; report.html is self-contained, escaped and complete."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from recog.report import plot_confusion, plot_curves, plot_sample_grid, write_report
from recog.report.curves import panels, read_columns

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path, min_side: int = 100) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > min_side


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


HEADER = "epoch,lr,seconds,train_images_per_second,train_loss,train_loss_box,top1,top5,macro_f1,ece,nll,num_samples"


def test_curves_three_epochs(tmp_path):
    csv = _csv(
        tmp_path / "results.csv",
        [
            HEADER,
            "1,0.01,3.2,410,2.1,0.9,0.31,0.70,0.25,0.12,1.9,500",
            "2,0.005,3.1,420,1.4,0.6,0.52,0.85,0.47,0.08,1.3,500",
            "3,0.001,3.0,415,0.9,0.4,0.66,0.93,0.61,0.05,0.95,500",
        ],
    )
    out = plot_curves(csv, tmp_path / "plots" / "curves.png")
    assert out == tmp_path / "plots" / "curves.png"
    _assert_png(out)


def test_curves_one_panel_per_quantity_train_and_val_losses_together(tmp_path):
    csv = _csv(
        tmp_path / "results.csv", [HEADER, "1,0.01,3.2,410,2.1,0.9,0.31,0.70,0.25,0.12,1.9,500"]
    )
    layout = panels(read_columns(csv))
    # classification's validation cross-entropy (nll) is the val loss, beside the train loss
    assert layout["loss"] == {"train loss": "train_loss", "val loss (NLL)": "nll"}
    assert layout["box loss"] == {"train box loss": "train_loss_box"}
    assert layout["learning rate"] == {"lr": "lr"}
    for metric in ("top1", "top5", "macro_f1", "ece"):
        assert layout[metric] == {"val": metric}
    # bookkeeping is not a curve
    assert not {"epoch", "seconds", "train_images_per_second", "num_samples"} & set(layout)
    assert "nll" not in layout and list(layout)[-1] == "learning rate"


def test_curves_one_row_and_missing_values(tmp_path):
    csv = _csv(
        tmp_path / "results.csv",
        ["epoch,lr,seconds,train_loss,map,miou,empty", "1,0.1,2.0,0.7,,0.4,"],
    )
    _assert_png(plot_curves(csv, tmp_path / "one.png"))


def test_curves_header_only(tmp_path):
    csv = _csv(tmp_path / "results.csv", ["epoch,lr,seconds,train_loss"])
    _assert_png(plot_curves(csv, tmp_path / "none.png"))


@pytest.mark.parametrize("classes", [3, 50])
def test_confusion(tmp_path, classes):
    g = torch.Generator().manual_seed(classes)
    matrix = torch.randint(0, 30, (classes, classes), generator=g)
    matrix[0] = 0  # a class with no samples must not divide by zero
    names = [f"class_{i}" for i in range(classes)]
    out = plot_confusion(matrix.tolist(), names, tmp_path / "confusion_matrix.png")
    _assert_png(out)


def test_sample_grid(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = [
        torch.randint(0, 256, (3, 40 + 8 * i, 48), generator=g, dtype=torch.uint8) for i in range(7)
    ]
    correct = [True, False, None, True, False, True, None]
    out = plot_sample_grid(
        images, [f"cat {i}0%" for i in range(7)], correct, tmp_path / "samples.png", cols=4
    )
    _assert_png(out)
    single = plot_sample_grid(images[:1], ["dog\ntrue: cat"], [False], tmp_path / "one.png")
    _assert_png(single, min_side=50)


def test_report_embeds_plots_and_escapes(tmp_path):
    curves = plot_curves(
        _csv(tmp_path / "results.csv", ["epoch,train_loss,top1", "1,1.0,0.5", "2,0.5,0.75"]),
        tmp_path / "plots" / "curves.png",
    )
    names = ["cat", "<b>&x"]
    confusion = plot_confusion([[5, 1], [2, 7]], names, tmp_path / "plots" / "confusion_matrix.png")
    metrics = {
        "top1": 0.8,
        "macro_f1": 0.7654,
        "nll": 0.4321,
        "num_samples": 15,
        "per_class": {"cat": 0.7692, "<b>&x": 0.8235},
        "per_class_support": {"cat": 6, "<b>&x": 9},
        "confusion_matrix": [[5, 1], [2, 7]],
    }
    metrics |= {"ece": 0.0312, "train_seconds": 12.5, "epochs_run": 2}
    out = write_report(
        tmp_path / "report.html",
        title="mushrooms <resnet18>",
        summary={"task": "classify", "model": "resnet18", "epochs": 2},
        metrics=metrics,
        plots=[confusion],
        curves=curves,
        labels={
            "per_class": "F1",
            "top1": "top-1 accuracy",
            "ece": "ECE",
            "per_class_support": "images",
            "num_samples": "validation images",
        },
        config={
            "model": {"name": "resnet18", "size": [224, 224]},
            "data": "a&b",
            "url": "https://example.com",
        },
        class_names=names,
    )
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    uris = {
        alt: data
        for data, alt in re.findall(
            r'src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"', text
        )
    }
    assert set(uris) == {"curves", "confusion_matrix"}
    assert base64.b64decode(uris["curves"]) == curves.read_bytes()
    assert base64.b64decode(uris["confusion_matrix"]) == confusion.read_bytes()
    assert "<figcaption><code>curves.png</code></figcaption>" in text
    for shown in ("0.8000", "0.7654", "0.769", "0.4321", ">15<", "12.5", "resnet18"):
        assert shown in text, shown
    # metrics as the fractions metrics.json holds (ECE too), never percentages
    assert "%" not in text.split('id="metrics"')[1].split('id="configuration"')[0]
    cards = text.split('<div class="cards">')[1].split("</div></div></div>")[0]
    assert "top-1 accuracy" in cards and ">0.0312<" in cards
    # bookkeeping is a block of its own, not a metric card
    assert "validation images" not in cards and "train_seconds" not in cards
    facts = text.split('id="run-facts"')[1].split("<h2")[0]
    assert "validation images" in facts and ">15<" in facts and "12.5" in facts
    # the per-class column is headed by the task's metric name
    header = text.split('id="per-class-table"')[1].split("</tr>")[0]
    assert re.findall(r"<th>([^<]*)</th>", header) == ["class", "F1", "images"]
    assert "&lt;b&gt;&amp;x" in text and "<b>&x" not in text
    assert "mushrooms &lt;resnet18&gt;" in text and "a&amp;b" in text
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", text)
    assert "<script" not in text


def test_report_without_optional_parts(tmp_path):
    out = write_report(
        tmp_path / "r.html",
        title="t",
        summary={},
        metrics={"num_samples": 0},
        plots=[],
        config={},
        class_names=[],
    )
    text = out.read_text(encoding="utf-8")
    assert "Per class" not in text and "plots" not in text.lower() and "</html>" in text
    for section in ("training-curves", "label-statistics", "training-samples", "legend"):
        assert f'id="{section}"' not in text

"""`recog explain` end to end: maps and their files, --score's faithfulness.json and report section, bad input.

In process (`recog.cli.main`), as the user's shell would call it but without
paying for a fresh interpreter and torch import each time.
"""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from recog.cli import main


class _Done:
    def __init__(self, code, out, err):
        self.returncode, self.stdout, self.stderr = code, out, err


def _cli(capsys, *args: str) -> _Done:
    code = main(list(args))
    out = capsys.readouterr()
    return _Done(code, out.out, out.err)


def _images(folder, n=3):
    from sklearn.datasets import load_digits

    folder.mkdir()
    digits = load_digits()
    for i in range(n):
        img = Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).resize((32, 32))
        img.save(folder / f"d{i}.png")
    return folder


def test_explain_writes_maps_overlays_and_their_scores(digits, tmp_path, capsys):
    images = _images(tmp_path / "in")
    out = tmp_path / "maps"
    proc = _cli(
        capsys,
        "explain", str(digits.run_dir), str(images),
        "--method", "gradcam", "--method", "occlusion", "--save-dir", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "6 maps of 3 images" in proc.stdout
    index = json.loads((out / "explanations.json").read_text())
    assert len(index) == 6 and {e["method"] for e in index} == {"gradcam", "occlusion"}
    for entry in index:
        saliency = np.load(out / entry["npy"], allow_pickle=False)
        assert saliency.shape == (digits.img_size, digits.img_size)
        assert 0 <= entry["deletion_auc"] <= 1 and 0 <= entry["insertion_auc"] <= 1
        with Image.open(out / entry["png"]) as png:
            assert png.size == (digits.img_size, digits.img_size)
        own = json.loads((out / entry["png"].replace(".png", ".json")).read_text())
        assert own["deletion_auc"] == round(entry["deletion_auc"], 6)


def test_explain_score_writes_faithfulness_and_the_reports_section(digits, tmp_path, capsys):
    out = tmp_path / "scores"
    proc = _cli(
        capsys,
        "explain", str(digits.run_dir), "--score", "--images", "4", "--steps", "8",
        "--method", "gradcam", "--method", "eigencam", "--save-dir", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = json.loads((out / "faithfulness.json").read_text())
    assert {"gradcam", "eigencam", "random"} <= set(table)
    for method in ("gradcam", "eigencam", "random"):
        assert {"deletion_auc", "insertion_auc", "randomization_spearman"} <= set(table[method])
    assert "deletion AUC" in proc.stdout and "random" in proc.stdout
    report = (digits.run_dir / "report.html").read_text()
    assert report.count("<!-- section:explanations -->") == 1
    assert "data:image/png;base64" in report.split("section:explanations")[1]
    again = _cli(capsys, "explain", str(digits.run_dir), "--score", "--images", "2", "--steps", "4",
                    "--save-dir", str(out))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (digits.run_dir / "report.html").read_text().count("<!-- section:explanations -->") == 1


def test_bad_explain_input_is_one_line(digits, tmp_path, capsys):
    for args, words in (
        ([], "give IMAGE paths"),
        (["--score", "--images", "0"], "--images 0"),
        ([str(_images(tmp_path / "x", 1)), "--target", "giraffe"], "--target giraffe"),
        ([str(tmp_path / "missing.png")], "missing.png"),
    ):
        proc = _cli(capsys, "explain", str(digits.run_dir), *args)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(lines) == 1 and words in lines[0], (args, proc.stderr)


def test_the_clis_method_list_is_the_packages():
    from recog.cli.trust import EXPLAIN_METHODS
    from recog.explain import METHODS

    assert tuple(EXPLAIN_METHODS) == tuple(METHODS)

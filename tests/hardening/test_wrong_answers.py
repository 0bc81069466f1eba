"""Answers that would be silently wrong (issue 33): a run that diverged, a NaN score, an export
checked against NaN.  Each is one line (exit 2), or an error row where the output has an
`error` column, and never a file that holds the wrong answer or replaces the user's.

The runs are tiny (digits at 16 px, a width-8 CNN, one epoch) and trained in this process; NaN
answers come from a loaded run whose parameters are set to NaN in memory.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import Subset

import recog
from recog import cli
from recog import io as rio
from recog.api.results import NON_FINITE, to_df
from recog.errors import RecogError

TINY = [
    "--data", "digits", "--model", "cnn", "--model-args", "width=8", "--img-size", "16",
    "--batch-size", "64", "--seed", "1",
]  # fmt: skip


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """`recog ARGS` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    said = [line for line in err.splitlines() if line.startswith("recog: error: ")]
    assert len(said) == 1 and err.endswith(said[0] + "\n"), err
    return said[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wrong") / "run"
    assert cli.main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def images(run, tmp_path_factory) -> list[Path]:
    """Three digit PNGs of the user's."""
    from serving import digit_png

    folder = tmp_path_factory.mktemp("photos")
    paths = [folder / f"digit{i}.png" for i in range(3)]
    for i, path in enumerate(paths):
        path.write_bytes(digit_png(i))
    return paths


def _nan_load(*args, **kwargs):
    """`recog.load`, then every parameter NaN: a diverged model the loader let through."""
    rec = _real_load(*args, **kwargs)
    with torch.no_grad():
        for p in rec.model.parameters():
            p.fill_(math.nan)
    return rec


_real_load = recog.api.load


@pytest.fixture
def nan_model(monkeypatch):
    monkeypatch.setattr(recog.api, "load", _nan_load)


# ---------------------------------------------------------------- 1. a diverged run
def test_a_learning_rate_that_explodes_the_loss_stops_the_run_and_saves_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _cli(capsys, "train", *TINY, "--epochs", "2", "--lr", "10", "--out", str(out))
    assert code == 2
    line = _one_line(err)
    assert "training diverged at epoch 1, step 10: the loss is" in line, line
    assert "mean of its last 10 steps), over 4x its first step's" in line, line
    assert "try a lower --lr (now 10)" in line, line
    assert not (out / "model.safetensors").exists() and not (out / "last.ckpt").exists()


def test_a_loss_that_explodes_later_keeps_the_best_epoch_byte_for_byte(
    tmp_path, capsys, monkeypatch
):
    """Epoch 2 explodes (the loss x1000 from its step 3): epoch 1's weights stay as they were."""
    from recog.data import load_classification
    from recog.tasks.classify import ClassifyTask

    steps = math.ceil(len(load_classification("digits", img_size=16, cache="off").train) / 64)
    real_loss, calls, saved = ClassifyTask.loss, {"n": 0}, []

    def loss(self, model, batch):
        parts = real_loss(self, model, batch)
        calls["n"] += 1
        return {**parts, "loss": parts["loss"] * 1000} if calls["n"] > steps + 2 else parts

    real_save = rio.save_weights

    def save_weights(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        saved.append(_sha(Path(path)))

    monkeypatch.setattr(ClassifyTask, "loss", loss)
    monkeypatch.setattr(rio, "save_weights", save_weights)
    out = tmp_path / "run"
    # --amp off: no timing probe, whose steps would also call the counted loss
    code, _, err = _cli(capsys, "train", *TINY, "--epochs", "3", "--amp", "off", "--out", str(out))
    assert code == 2
    line = _one_line(err)
    assert "training diverged at epoch 2, step" in line and "keeps epoch 1" in line, line
    assert len(saved) == 1 and _sha(out / "model.safetensors") == saved[0]


def test_weights_that_become_nan_while_the_loss_is_finite_are_never_saved(
    tmp_path, capsys, monkeypatch
):
    """A BatchNorm's running variance overflowing to NaN: the training loss never sees it."""
    from recog.engine import trainer

    real_evaluate = trainer.evaluate

    def evaluate(model, *args, **kwargs):
        with torch.no_grad():
            next(b for n, b in model.named_buffers() if n.endswith("running_var")).fill_(math.nan)
        return real_evaluate(model, *args, **kwargs)

    monkeypatch.setattr(trainer, "evaluate", evaluate)
    out = tmp_path / "run"
    code, _, err = _cli(capsys, "train", *TINY, "--epochs", "1", "--out", str(out))
    assert code == 2
    line = _one_line(err)
    assert "training diverged at epoch 1: its weight " in line, line
    assert "running_var is not finite (NaN or inf)" in line, line
    assert "lower --lr" in line, line
    assert not (out / "model.safetensors").exists() and not (out / "last.ckpt").exists()


# ---------------------------------------------------------------- 2. a NaN score
@pytest.mark.parametrize("fmt", ["json", "csv", "coco"])
def test_predict_prints_no_nan_score(run, images, nan_model, tmp_path, capsys, fmt):
    before = [_sha(p) for p in images]
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    if fmt == "coco":
        # a classifier has no boxes for COCO: the NaN check must come first
        code, out, err = _cli(capsys, "predict", str(run), *map(str, images), "--format", fmt)
    else:
        code, out, err = _cli(
            capsys, "predict", str(run), *map(str, images), "--format", fmt,
            "--save-dir", str(drawn),
        )  # fmt: skip
    assert code == 2
    assert _one_line(err) == f"recog: error: {images[0]}: {NON_FINITE}"
    assert out == "" and not any(drawn.iterdir())
    assert [_sha(p) for p in images] == before


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_predict_out_writes_an_error_row_not_a_nan_score(
    run, images, nan_model, tmp_path, capsys, suffix
):
    before = [_sha(p) for p in images]
    out_file = tmp_path / f"answers{suffix}"
    code, _, err = _cli(capsys, "predict", str(run), *map(str, images), "--out", str(out_file))
    assert code == 1  # some images have no answer
    assert "Traceback" not in err and f"{images[0]}: {NON_FINITE}" in err, err
    if suffix == ".jsonl":

        def refuse(constant):  # strict JSON: NaN and Infinity are not JSON
            raise AssertionError(f"{constant} in {out_file}")

        rows = [
            json.loads(line, parse_constant=refuse) for line in out_file.read_text().splitlines()
        ]
    else:
        rows = pq.read_table(out_file).to_pylist()
    assert [r["path"] for r in rows] == [str(p) for p in images]
    for row, path in zip(rows, images, strict=True):
        assert row["error"] == f"{path}: {NON_FINITE}"
        assert row["scores"] is None and row["labels"] is None
    assert [_sha(p) for p in images] == before


def test_the_python_api_refuses_a_nan_table(run, images):
    preds = _nan_load(run).predict([str(p) for p in images])
    with pytest.raises(RecogError, match=rf"^{images[0]}: {NON_FINITE}$"):
        to_df(preds)


def test_the_server_answers_a_clear_error_not_nan_nor_500(run, images, tmp_path):
    from fastapi.testclient import TestClient

    from recog.serve import ServeConfig, create_app

    db = tmp_path / "history.db"
    app = create_app(
        {"digits": _nan_load(run)}, ServeConfig(db_url=f"sqlite:///{db}", warm_up=False)
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        data = images[0].read_bytes()
        r = client.post("/v1/predict", files={"file": ("d.png", data, "image/png")})
        assert r.status_code == 422, r.text
        assert r.json() == {
            "error": "non_finite_scores",
            "detail": f"{NON_FINITE} for this image (NaN or inf)",
        }
        assert client.get("/v1/history").json()["items"] == []  # nothing recorded


# ---------------------------------------------------------------- 3. the export's parity check
def test_parity_counts_nan_outputs_of_the_file_as_a_failure(run, tmp_path, monkeypatch):
    from recog.deploy import parity
    from recog.deploy.backend import ExportedModel
    from recog.deploy.export import write_onnx

    rec = recog.load(run)
    exported = ExportedModel(write_onnx(rec, tmp_path / "model.onnx", dynamic_batch=True))
    real_raw = exported.raw
    monkeypatch.setattr(exported, "raw", lambda px: [o * math.nan for o in real_raw(px)])
    val = Subset(rec.task.data.splits(rec.config).val, range(32))  # fast: 32 images
    with pytest.raises(parity.ParityError, match="outputs not finite \\(NaN or inf\\) on 32 of 32"):
        parity.check_parity(rec, exported, val, tolerance=0.0, before={"top1": 0.0})


def test_export_of_a_nan_model_is_refused_and_keeps_the_earlier_file(run, tmp_path, capsys):
    from recog.deploy.run import export_run

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    onnx_file = copy / "export" / "model.onnx"
    onnx_file.parent.mkdir()
    onnx_file.write_bytes(b"an earlier export")
    before = {p.name: _sha(p) for p in (copy / "export").iterdir()}
    rec = _nan_load(copy)
    with pytest.raises(RecogError, match="the model's outputs are not finite") as info:
        export_run(rec)
    assert str(info.value).startswith(f"{copy}: ") and "nothing exported" in str(info.value)
    assert {p.name: _sha(p) for p in (copy / "export").iterdir()} == before
    assert onnx_file.is_file()

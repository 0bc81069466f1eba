"""Every flag's edges (issue 33): a value out of range, of the wrong type, or naming what this
machine does not have is one line naming the flag, exit 2, and nothing of the user's changed.

Each case runs `recog` in this process; only the commands that need a trained run use the
module's tiny run (digits at 16 px, a width-8 CNN, one epoch)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from recog import cli
from recog.errors import RecogError

TINY = ["--data", "digits", "--model", "cnn", "--model-args", "width=8", "--img-size", "16",
        "--batch-size", "64", "--epochs", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("flags") / "run"
    assert cli.main(["train", *TINY, "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    for i in range(3):
        Image.new("RGB", (16, 16), (40 * i, 90, 200)).save(folder / f"{i}.png")
    return folder


def _tree(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (or of `root` itself)."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _refused(capsys, *args: str) -> str:
    """`recog ARGS` must exit 2 with one `recog: error:` line and no traceback: that line."""
    capsys.readouterr()
    code = cli.main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    said = [line for line in err.splitlines() if line.startswith("recog:")]
    assert len(said) == 1 and err.endswith(said[0] + "\n"), err
    return said[0]


# ----------------------------------------------------------------- 1: --model-args
@pytest.mark.parametrize(
    ("arg", "said"),
    [
        ("width=abc", "--model-args width='abc': model cnn takes a whole number from 1 to 512"),
        ("width=-5", "--model-args width=-5: model cnn takes a whole number from 1 to 512"),
        ("depth=0", "--model-args depth=0: model cnn takes a whole number from 1 to 8"),
        ("foo=1", "--model-args foo: model cnn has no such argument (it takes: width, depth"),
        ("attention=x", "model cnn takes one of none, se, cbam"),
    ],
)
def test_model_args_are_typed_and_ranged(capsys, tmp_path, arg, said):
    out = tmp_path / "run"
    line = _refused(capsys, "train", *TINY[:4], "--model-args", arg, "--epochs", "1",
                    "--out", str(out))  # fmt: skip
    assert said in line
    assert not out.exists()


def test_model_args_from_the_api_and_a_config(tmp_path):
    import recog

    with pytest.raises(RecogError, match=r"--model-args width=-5: model cnn takes"):
        recog.train("digits", "cnn", model_args={"width": -5}, epochs=1, out=str(tmp_path / "a"))
    config = tmp_path / "config.yaml"
    config.write_text("data: digits\nmodel: cnn\nmodel_args: {depth: 0}\n")
    before = _tree(config)
    with pytest.raises(RecogError, match=r"--model-args depth=0: model cnn takes a whole number"):
        recog.train(config=recog.TrainRequest.load(config), out=str(tmp_path / "b"))
    assert _tree(config) == before
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ----------------------------------------------------------------- 2: --device
@pytest.mark.parametrize("device", ["nonsense", "cuda:99", "mps:7"])
def test_a_device_this_machine_lacks(capsys, tmp_path, device):
    out = tmp_path / "run"
    line = _refused(capsys, "train", *TINY, "--device", device, "--out", str(out))
    assert f"--device {device}: not a device of this machine, which has cpu" in line
    assert not out.exists()


# ----------------------------------------------------------------- 3: predict's inputs
def test_predict_top_k(capsys, tiny_run, images):
    before = _tree(tiny_run)
    assert "--top-k: must be at least 1, not -1" in _refused(
        capsys, "predict", str(tiny_run), str(images), "--top-k", "-1"
    )
    assert _tree(tiny_run) == before


@pytest.mark.parametrize("bad", ["[1, 2]", "null", '"text"', "{broken"])
def test_a_resumed_jsonl_with_a_bad_line(capsys, tiny_run, images, tmp_path, bad):
    out = tmp_path / "p.jsonl"
    assert cli.main(["predict", str(tiny_run), str(images), "--out", str(out)]) == 0
    with out.open("a") as fh:
        fh.write(bad + "\n")
    before = _tree(out)
    line = _refused(capsys, "predict", str(tiny_run), str(images), "--out", str(out), "--resume")
    assert f"{out}:4: not a JSON line of recog predict" in line
    assert _tree(out) == before


def test_a_parquet_manifest_without_paths(capsys, tiny_run, images, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"file": [str(images / "0.png")]}), manifest)
    before = _tree(manifest)
    line = _refused(
        capsys, "predict", str(tiny_run), str(manifest), "--out", str(tmp_path / "o.jsonl")
    )
    assert f"{manifest}: a manifest needs a `path` column" in line
    assert _tree(manifest) == before and not (tmp_path / "o.jsonl").exists()


def _onnx_with(path: Path, **meta: str) -> None:
    """A one-node ONNX file carrying `meta` as recog's metadata."""
    import onnx
    from onnx import TensorProto, helper

    from recog.deploy.backend import META_KEYS

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])  # fmt: skip
    model = helper.make_model(graph)
    good = {"classes": '["a", "b"]', "mean": "[0, 0, 0]", "std": "[1, 1, 1]",
            "outputs": '["logits"]', "finish_args": "{}", "config": "data: digits\nmodel: cnn\n"}  # fmt: skip
    values = {k: good.get(k, "x") for k in META_KEYS} | meta
    onnx.helper.set_model_props(model, values)
    onnx.save(model, str(path))


@pytest.mark.parametrize(
    ("key", "value"), [("mean", "{bad"), ("std", "[1]"), ("outputs", "-5"), ("finish_args", "[]")]
)
def test_damaged_onnx_metadata(capsys, images, tmp_path, key, value):
    model = tmp_path / "model.onnx"
    _onnx_with(model, **{key: value})
    before = _tree(model)
    line = _refused(capsys, "predict", str(model), str(images / "0.png"))
    assert f"{model}: its recog metadata is damaged ({key} " in line
    assert _tree(model) == before


# ----------------------------------------------------------------- 4: --log mlflow
@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("nonsense://x", "not a tracking URI MLflow knows"),
        ("file:./mlruns", "MLflow's file store is retired; use sqlite:///PATH/mlflow.db"),
        ("http://127.0.0.1:9", "no MLflow server answers at 127.0.0.1:9"),
    ],
)
def test_a_tracking_store_checked_before_training(capsys, tmp_path, uri, said):
    pytest.importorskip("mlflow")
    out = tmp_path / "run"
    line = _refused(capsys, "train", *TINY, "--log", "mlflow", "--log-uri", uri, "--out", str(out))
    assert f"--log-uri {uri}: {said}" in line
    assert not out.exists()


def test_a_sqlite_store_in_a_missing_folder_is_not_created(capsys, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    missing = tmp_path / "missing"
    line = _refused(capsys, "train", *TINY, "--log", "mlflow", "--log-uri",
                    f"sqlite:///{missing}/x.db", "--out", str(tmp_path / "run"))  # fmt: skip
    assert f"the folder {missing} does not exist" in line
    assert not missing.exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nonsense://x")
    line = _refused(capsys, "train", *TINY, "--log", "mlflow", "--out", str(tmp_path / "run"))
    assert "MLFLOW_TRACKING_URI=nonsense://x: not a tracking URI MLflow knows" in line
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------- 5: budgets
def test_budgets_have_an_upper_bound(capsys, tmp_path, tiny_run, images):
    out = tmp_path / "run"
    assert "epochs must be at least 1 and at most 100000" in _refused(
        capsys, "train", *TINY[:-2], "--epochs", "99999999999999999999999", "--out", str(out)
    )
    assert "--time: at most 30 days" in _refused(
        capsys, "train", *TINY, "--time", "99999999999h", "--out", str(out)
    )
    assert not out.exists()
    before = _tree(tiny_run)
    assert "--images 999999999: must be from 1 to 10000" in _refused(
        capsys, "explain", str(tiny_run), "--score", "--images", "999999999"
    )
    assert "--steps 999999999: must be from 2 to 1000" in _refused(
        capsys, "explain", str(tiny_run), str(images), "--steps", "999999999"
    )
    assert "--steps 999999999: must be from 1 to 10000" in _refused(
        capsys, "attack", str(tiny_run), "--steps", "999999999"
    )
    assert _tree(tiny_run) == before


# ----------------------------------------------------------------- 6: --class-weights
def test_class_weights_used_or_refused(capsys, tmp_path):
    out = tmp_path / "run"
    assert "--class-weights: a classify model's loss takes no class weights" in _refused(
        capsys, "train", *TINY, "--class-weights", "1,2", "--out", str(out)
    )
    seg = ["train", "--data", "shapes:8:2", "--model", "unet", "--epochs", "1", "--out", str(out)]
    assert "--class-weights: 2 weights given for 6 classes" in _refused(
        capsys, *seg, "--class-weights", "1,2"
    )
    for bad in ("1,nan,1,1,1,1", "1,-1,1,1,1,1", "0,0,0,0,0,0"):
        assert "weights must be finite, non-negative and not all 0" in _refused(
            capsys, *seg, "--class-weights", bad
        )
    assert not out.exists()


# ----------------------------------------------------------------- 7: built-in generators
def test_shapes_counts_are_bounded(capsys, tmp_path):
    out = tmp_path / "run"
    assert "shapes:999999999999:1: at most 100000 scenes in all" in _refused(
        capsys, "train", "--data", "shapes:999999999999:1", "--out", str(out)
    )
    assert "shapes:5:1:3: expected shapes or shapes:TRAIN:VAL" in _refused(
        capsys, "train", "--data", "shapes:5:1:3", "--out", str(out)
    )
    assert not out.exists()


# ----------------------------------------------------------------- 8: serve's numbers
@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--timeout", "-1", "--timeout -1.0: must be at least 0.001"),
        ("--timeout", "nan", "--timeout nan: must be at least 0.001"),
        ("--timeout", "inf", "--timeout inf: must be at most 3600"),
        ("--max-wait-ms", "nan", "--max-wait-ms nan: must be at least 0"),
        ("--max-batch", "99999", "--max-batch 99999: must be at most 4096"),
    ],
)
def test_serve_numbers_in_range(capsys, tmp_path, flag, value, said):
    db = tmp_path / "history.db"
    line = _refused(
        capsys, "serve", str(tmp_path / "no-run"), flag, value, "--db", f"sqlite:///{db}"
    )
    assert said in line
    assert not db.exists()


# ----------------------------------------------------------------- 9: what --data is
def test_a_built_in_set_of_another_task(capsys, tmp_path):
    out = tmp_path / "run"
    line = _refused(capsys, "train", "--model", "yolo_n", "--data", "digits", "--out", str(out))
    assert "--data digits: a built-in dataset that detect models do not read" in line
    assert "yolo_n is a detect model; built-in detect data: shapes" in line
    assert not out.exists()


def test_a_url_as_data(capsys, tmp_path, tiny_run):
    out = tmp_path / "run"
    assert "--data https://example.com/set.zip: training reads data on this machine" in _refused(
        capsys, "train", "--data", "https://example.com/set.zip", "--out", str(out)
    )
    assert not out.exists()
    for item in ("https://example.com/a.jpg", str(tmp_path / "list.csv")):
        assert f"{item}: a URL or a manifest is read by a batch job; add --out" in _refused(
            capsys, "predict", str(tiny_run), item
        )


def test_explain_and_attack_bounds_hold_in_the_python_api_too(tmp_path):
    """The CLI's bounds are the API's (`recog.api.trust`): a huge value is one RecogError
    before any work, whichever door it came through."""
    import pytest

    import recog
    from recog.errors import RecogError

    rec = recog.train("digits", "cnn", epochs=1, model_args={"width": 8}, img_size=16,
                      out=str(tmp_path / "run"))  # fmt: skip
    for call, flag in (
        (lambda: rec.score_explanations(images=999_999_999), "--images 999999999"),
        (lambda: rec.score_explanations(steps=10**9), "--steps 1000000000"),
        (lambda: rec.explain([torch_image()], steps=1), "--steps 1"),
        (lambda: rec.attack(steps=10**9), "--steps 1000000000"),
        (lambda: rec.attack(images=0), "--images 0"),
        (lambda: rec.attack(batch_size=-1), "--batch-size -1"),
    ):
        with pytest.raises(RecogError, match=flag):
            call()


def torch_image():
    import torch

    return torch.zeros(3, 16, 16, dtype=torch.uint8)

"""`recog export`: the file predicts alone, matches the run, carries its metadata; int8 and
OpenVINO; a failed check leaves nothing; the backends behind `recog predict` and `recog.load`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import recog
from recog.cli import main
from recog.confidence.facet import CONFIDENCE
from recog.deploy import parity
from recog.deploy.backend import META_KEYS, ExportedModel
from recog.deploy.export import write_onnx
from recog.deploy.run import EXPORT_JSON, exclusion_plan, export_run
from recog.errors import RecogError

onnx = pytest.importorskip("onnx", reason="the export extra (onnx) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")


def _cli(capsys, *args: str):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def run(digits, tmp_path_factory):
    """A private copy of the shared digits run (exports write into the run directory)."""
    dest = tmp_path_factory.mktemp("deploy") / "digits-cnn"
    shutil.copytree(digits.run_dir, dest)
    return dest


@pytest.fixture(scope="module")
def exported(run):
    code = main(["export", str(run)])
    assert code == 0
    return run / "export" / "model.onnx"


def _val_images(rec, n: int = 16) -> torch.Tensor:
    val = rec.task.data.splits(rec.config).val
    return torch.stack([val[i].image for i in range(n)])


def test_the_file_alone_predicts_what_the_run_does(run, exported):
    """Plain onnxruntime on the file, uint8 pixels in: the torch model's logits."""
    rec = recog.load(run)
    images = _val_images(rec)
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": images.numpy()})
    with torch.inference_mode():
        expected = CONFIDENCE.of(rec.task).logits(rec.task, rec.model, images).numpy()
    assert np.abs(logits - expected).max() < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    assert set(META_KEYS) <= set(meta)
    assert json.loads(meta["classes"]) == rec.class_names and meta["task"] == "classify"
    assert int(meta["img_size"]) == rec.img_size
    # the batch axis is dynamic
    (five,) = session.run(None, {"images": images[:5].numpy()})
    assert five.shape == (5, len(rec.class_names))


def test_export_json_holds_the_parity_numbers(run, exported):
    record = json.loads((exported.parent / EXPORT_JSON).read_text())
    assert record["file"] == "model.onnx" and record["metric"] == "top1"
    assert record["max_abs_diff"] < 1e-4 and record["top1_agreement"] == 1.0
    assert abs(record["top1_before"] - record["top1_after"]) <= 0.005
    assert record["val_images"] > 0 and "model.onnx" in record["files"]


def test_backends_answer_like_torch(run, exported, capsys):
    rec = recog.load(run)
    images = list(_val_images(rec, 8))
    torch_labels = [int(p.labels) for p in rec.predict(images)]
    from_file = recog.load(exported)
    assert isinstance(from_file.model, ExportedModel) and from_file.run_dir == run
    assert [int(p.labels) for p in from_file.predict(images)] == torch_labels
    by_run = recog.load(run, backend="onnx")
    assert [int(p.labels) for p in by_run.predict(images)] == torch_labels


def test_predict_and_val_take_a_backend(run, exported, tmp_path, capsys):
    from PIL import Image

    rec = recog.load(run)
    for i, image in enumerate(_val_images(rec, 4)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / f"{i}.png")
    answers = {}
    for backend in ("torch", "onnx"):
        code, out, err = _cli(capsys, "predict", str(run), str(tmp_path), "--format", "json",
                              "--backend", backend)  # fmt: skip
        assert code == 0, err
        answers[backend] = [r["label"] for r in json.loads(out)]
    assert answers["onnx"] == answers["torch"]
    code, out, err = _cli(
        capsys, "val", str(run), "--backend", "onnx", "--out", str(tmp_path / "v")
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "v" / "metrics.json").read_text())
    export = json.loads((exported.parent / EXPORT_JSON).read_text())
    assert metrics["top1"] == pytest.approx(export["top1_after"], abs=1e-9)


def test_int8_is_smaller_and_keeps_top1(run, exported, tmp_path):
    rec = recog.load(run)
    out = tmp_path / "int8.onnx"
    record = rec.export(int8=True, out=out, calibration_images=32)  # Recognizer.export
    assert record["quantization"] == "static" and record["drop"] <= 0.01
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert out.stat().st_size < exported.stat().st_size / 2.5  # int8 weights, fp32 ones


def test_a_failed_check_is_an_error_and_leaves_nothing(run, tmp_path, monkeypatch):
    """An export whose file answers differently (here: other weights) is refused."""
    rec = recog.load(run)
    other = recog.load(run)
    with torch.no_grad():
        for p in other.model.parameters():
            p.normal_(0, 0.5)
    real = write_onnx

    def wrong_file(r, out, **kw):
        return real(other, out, **kw)

    monkeypatch.setattr("recog.deploy.run.write_onnx", wrong_file)
    dest = tmp_path / "out" / "model.onnx"
    with pytest.raises(parity.ParityError, match="top1 fell from"):
        export_run(rec, out=dest)
    assert not dest.exists() and not (dest.parent / EXPORT_JSON).exists()
    assert [p.name for p in dest.parent.iterdir()] == []  # no temporary folder left either


def test_accuracy_control_tries_float_layers_in_order():
    nodes = [f"n{i}" for i in range(8)]
    plans = exclusion_plan(nodes)
    assert plans[:3] == [["n7"], ["n0"], ["n0", "n7"]]
    assert plans[3] == nodes[-2:] and plans[4] == nodes[-4:]
    assert exclusion_plan(["only"]) == [["only"]] and exclusion_plan([]) == []


def test_openvino_ir_round_trips(run, tmp_path):
    pytest.importorskip("openvino", reason="the export extra (openvino) is not installed")
    rec = recog.load(run)
    record = export_run(rec, fmt="openvino", out=tmp_path / "m.xml")
    assert (tmp_path / "m.xml").is_file() and (tmp_path / "m.bin").is_file()
    assert record["top1_agreement"] == 1.0 and record["max_abs_diff"] < 1e-3
    images = list(_val_images(rec, 8))
    loaded = recog.load(tmp_path / "m.xml")
    assert [int(p.labels) for p in loaded.predict(images)] == [
        int(p.labels) for p in rec.predict(images)
    ]


def test_openvino_int8_is_nncf_quantized_checked_and_loads(run, exported, tmp_path, capsys):
    """`recog export RUN --format openvino --int8`: NNCF's FakeQuantize operations in the IR,
    the metric within --max-drop on the whole validation split, and a file that predicts
    as the run does on most images (int8 may flip a few near the decision boundary)."""
    ov = pytest.importorskip("openvino", reason="the export extra (openvino) is not installed")
    pytest.importorskip("nncf", reason="the export extra (nncf) is not installed")
    out = tmp_path / "q.xml"
    code, printed, _ = _cli(capsys, "export", str(run), "--format", "openvino", "--int8",
                            "--calibration-images", "32", "--out", str(out))  # fmt: skip
    assert code == 0 and "q.xml" in printed
    record = json.loads((tmp_path / EXPORT_JSON).read_text())
    assert record["format"] == "openvino" and record["int8"] is True
    assert record["quantization"] == "nncf" and record["drop"] <= 0.01
    assert record["size_bytes"] == out.stat().st_size + out.with_suffix(".bin").stat().st_size
    ops = {op.get_type_name() for op in ov.Core().read_model(str(out)).get_ops()}
    assert "FakeQuantize" in ops
    assert out.with_suffix(".bin").stat().st_size < exported.stat().st_size / 2.5  # int8 weights
    rec = recog.load(run)
    images = list(_val_images(rec, 16))
    loaded = recog.load(out)
    agree = [int(a.labels) == int(b.labels)
             for a, b in zip(loaded.predict(images), rec.predict(images), strict=True)]  # fmt: skip
    assert sum(agree) >= 14


def test_a_graph_nncf_cannot_take_is_one_line(run, exported, tmp_path, monkeypatch, capsys):
    nncf = pytest.importorskip("nncf", reason="the export extra (nncf) is not installed")

    def refuse(*args, **kwargs):
        raise ValueError("unsupported operation Foo\nmore lines of NNCF's own")

    monkeypatch.setattr(nncf, "quantize", refuse)
    dest = tmp_path / "out" / "q.xml"
    code, _, err = _cli(capsys, "export", str(run), "--format", "openvino", "--int8",
                        "--calibration-images", "8", "--out", str(dest))  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert "NNCF cannot quantize it (unsupported operation Foo)" in err
    assert not dest.exists() and [p.name for p in dest.parent.iterdir()] == []


def test_bad_input_is_one_line(run, tmp_path, capsys):
    code, _, err = _cli(capsys, "export", str(tmp_path / "nope"))
    assert code == 2 and "no such run directory" in err and err.count("\n") == 1
    fresh = tmp_path / "fresh"
    shutil.copytree(run, fresh, ignore=shutil.ignore_patterns("export"))
    code, _, err = _cli(capsys, "predict", str(fresh), str(fresh), "--backend", "onnx")
    assert code == 2 and "recog export" in err and err.count("\n") == 1
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model at all")
    with pytest.raises(RecogError, match="not an ONNX file|not exported by recog"):
        recog.load(broken)


def test_the_backend_gets_back_the_exact_pixels(run, exported):
    """The task hands models normalized tensors; the file wants uint8: the round trip is exact."""
    rec = recog.load(run)
    model = ExportedModel(exported)
    pixels = torch.randint(0, 256, (4, 3, rec.img_size, rec.img_size), dtype=torch.uint8)
    pixels[0] = 0
    pixels[1] = 255
    assert torch.equal(model.pixels(rec.task.normalize(pixels)), pixels)


def test_bench_of_an_exported_file_times_its_runtimes(run, exported, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("recog.deploy.bench.DEFAULT_BUDGET_S", 0.2)
    out = tmp_path / "bench"
    code, _, err = _cli(capsys, "bench", str(exported), "--batch", "2", "--out", str(out))
    assert code == 0, err
    record = json.loads((out / "bench.json").read_text())
    assert {r["backend"] for r in record["rows"]} == {"onnxruntime", "openvino"}
    # FLOPs and parameters are the architecture's, the same as a bench of the run
    rec = recog.load(run)
    assert record["params"] == sum(p.numel() for p in rec.model.parameters())
    assert record["flops_per_image"] > 0
    code, _, err = _cli(capsys, "bench", str(exported), "--backends", "torch")
    assert code == 2 and "torch rows need the run directory" in err


def test_torchscript_is_traced_checked_and_only_recog_export_opens_it(run, tmp_path, capsys):
    """`--format torchscript`: the pixel graph traced, checked like every export, its metadata
    in the archive; plain `torch.jit.load` answers as the run with any batch; recog itself
    refuses to load one (a TorchScript archive holds code), and ONNX-only flags are refused."""
    out = tmp_path / "digits.torchscript"
    code, stdout, err = _cli(capsys, "export", str(run), "--format", "torchscript",
                             "--out", str(out))  # fmt: skip
    assert code == 0, err
    record = json.loads((tmp_path / EXPORT_JSON).read_text())
    assert record["format"] == "torchscript" and record["opset"] is None
    assert record["max_abs_diff"] < 1e-4 and record["top1_agreement"] == 1.0
    rec = recog.load(run)
    images = _val_images(rec, 5)  # another batch than the traced one (2)
    with torch.inference_mode():
        logits = torch.jit.load(str(out))(images)
        expected = CONFIDENCE.of(rec.task).logits(rec.task, rec.model, images)
    assert (logits - expected).abs().max() < 1e-4
    from recog.deploy.backend import read_meta

    meta = read_meta(out)
    assert json.loads(meta.values["classes"]) == rec.class_names
    with pytest.raises(RecogError, match="holds code"):
        recog.load(out)
    for flags in (["--int8"], ["--opset", "17"]):
        code, _, err = _cli(capsys, "export", str(run), "--format", "torchscript", *flags,
                            "--out", str(tmp_path / "no.torchscript"))  # fmt: skip
        assert code != 0 and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "no.torchscript").exists()


def test_export_never_replaces_a_file_it_did_not_write(run, exported, tmp_path, capsys):
    """Issue 33: `--out photos/precious.jpg` replaced the photo, `--out RUN/model.safetensors`
    the run's weights.  Both are refused in one line, the files untouched."""
    photo = tmp_path / "precious.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 a photo")
    weights = run / "model.safetensors"
    before = weights.read_bytes()
    for dest, says in ((photo, "is not a file recog exported there"),
                       (weights, "inside the run folder")):  # fmt: skip
        code, _, err = _cli(capsys, "export", str(run), "--out", str(dest))
        assert code != 0 and says in err and len(err.strip().splitlines()) == 1
    assert photo.read_bytes() == b"\xff\xd8\xff\xe0 a photo"
    assert weights.read_bytes() == before
    # recog's own earlier export in a folder of the user's is replaced as asked
    mine = tmp_path / "mine.onnx"
    assert _cli(capsys, "export", str(run), "--out", str(mine))[0] == 0
    assert _cli(capsys, "export", str(run), "--out", str(mine))[0] == 0

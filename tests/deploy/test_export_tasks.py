"""Export for every task: U-Net with dynamic height and width, YOLO and torchvision's SSDlite
with NMS after the graph, torchvision's two-stage detectors whole (NMS in the graph, one
image at a time); `recog bench`'s numbers and FLOP count."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torchvision

import recog
from recog.cli import main
from recog.deploy.backend import ExportedModel
from recog.deploy.bench import flops_per_image
from recog.deploy.export import write_onnx
from recog.deploy.graph import PixelGraph
from recog.deploy.run import export_run
from recog.errors import RecogError
from recog.models.export_parts import ExportParts, export_parts
from recog.models.factory import list_models

pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "unet"
    return recog.train("shapes:16:8", "unet", epochs=2, img_size=64, batch_size=8, out=str(out))


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "yolo"
    return recog.train("shapes:16:8", "yolo_n", epochs=1, img_size=64, batch_size=8, out=str(out))


# 23 s on 2 cores (the exporter's dynamic height and width): in `make test-all`
@pytest.mark.slow
def test_unet_exports_with_any_image_size(unet, tmp_path):
    # the parity check itself is tested on the classifier (test_export.py) and the detector
    exported = ExportedModel(write_onnx(unet, tmp_path / "unet.onnx"))
    # a size the export never saw (not square, not the run's): the same logits as torch
    x = torch.randn(1, 3, 80, 144)  # not a multiple of 32: the graph pads like the model
    with torch.inference_mode():
        expected = unet.model(
            exported.pixels(x).float().div(255).sub(unet.task.mean).div(unet.task.std)
        )
    assert (exported(x) - expected).abs().max() < 1e-3


def test_yolo_exports_boxes_and_scores_and_nms_follows(yolo, tmp_path):
    import copy

    # a detector trained two steps scores every box 0.0025 (its prior): NMS among tied scores
    # keeps whichever float noise puts first, in torch as in onnxruntime (seen: a different
    # survivor).  Seeded weights for the class scores spread them; parity holds for any weights.
    yolo = copy.deepcopy(yolo)
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in yolo.model.named_parameters():
            if name.startswith("head.cls."):  # the class-score branch only
                p.add_(torch.randn(p.shape, generator=noise) * 0.1)
    record = export_run(yolo, out=tmp_path / "yolo.onnx")
    assert record["metric"] == "map" and abs(record["drop"]) <= 0.005
    exported = ExportedModel(tmp_path / "yolo.onnx")
    assert exported.finish == "nms" and exported.finish_args["iou_threshold"] == 0.7
    images = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    _same_detections(yolo, exported, images)


def _same_detections(rec, exported, images, *, at_least: int = 10) -> None:
    """The torch model's detections and the file's: the same scores, and the same box and
    class for every detection whose score no other comes within 1e-5 of (among tied
    scores NMS may keep either twin)."""
    with torch.inference_mode():
        ours = rec.task.predict(rec.model, images)
        theirs = rec.task.predict(exported, images)
    checked = 0
    for a, b in zip(ours, theirs, strict=True):
        assert len(a.boxes) == len(b.boxes) > 0
        assert torch.allclose(a.scores, b.scores, atol=1e-4)
        gaps = (a.scores[:, None] - a.scores[None, :]).abs() + torch.eye(len(a.scores))
        for i in torch.nonzero(gaps.min(dim=1).values > 1e-5).flatten().tolist():
            assert torch.allclose(a.boxes[i], b.boxes[i], atol=1e-2) and a.labels[i] == b.labels[i]
            checked += 1
    assert checked >= at_least, (
        f"only {checked} detections with distinct scores: the check says little"
    )


# slow (30 s): the default suite keeps yolo's export and Faster R-CNN's whole graph below
@pytest.mark.slow
def test_ssdlite_exports_up_to_nms_and_answers_as_torchvision(tmp_path):
    """torchvision's SSDlite, trained at 64 px (its transform resizes to 320 inside): the
    file's detections are torchvision's postprocess's, box for box."""
    rec = recog.train("shapes:16:8", "ssdlite", epochs=1, img_size=64, batch_size=8, amp="off",
                      out=str(tmp_path / "ssdlite"))  # fmt: skip
    # a model trained two steps scores every anchor about alike, and NMS among tied scores
    # keeps either twin; random class-head weights spread the scores over the anchors
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in rec.model.named_parameters():
            if "classification_head" in name and name.endswith("weight"):
                p.copy_(torch.randn(p.shape, generator=noise) * 2.0)
    record = export_run(rec, out=tmp_path / "ssd.onnx")
    assert record["metric"] == "map" and abs(record["drop"]) <= 0.005
    assert record["max_abs_diff"] < 1e-4
    exported = ExportedModel(tmp_path / "ssd.onnx")
    assert exported.finish == "nms" and exported.finish_args["iou_threshold"] == 0.55
    images = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=noise)
    with torch.inference_mode():
        ours = rec.task.predict(rec.model, images)
        theirs = rec.task.predict(exported, images)
    # SSDlite's anchors give exactly tied scores in pairs, and NMS keeps either twin, so the
    # lists may part after a tie: the best score is the same, and most of the best 20
    for a, b in zip(ours, theirs, strict=True):
        assert torch.allclose(a.scores[0], b.scores[0], atol=1e-4)
        best = {
            (round(float(s), 3), int(c)) for s, c in zip(a.scores[:20], a.labels[:20], strict=True)
        }
        same = {
            (round(float(s), 3), int(c)) for s, c in zip(b.scores[:20], b.labels[:20], strict=True)
        }
        assert len(best & same) >= 0.8 * len(best)


def _spread_scores(rec, head: str, scale: float = 0.5) -> None:
    """Random weights for a barely trained head, so its scores differ (NMS among tied scores
    keeps either twin, in torch as in onnxruntime) and some pass the score threshold."""
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in rec.model.named_parameters():
            if name.startswith(head):
                p.add_(torch.randn(p.shape, generator=noise) * scale)


def test_faster_rcnn_exports_whole_and_answers_as_torch(tmp_path):
    """torchvision's Faster R-CNN (MobileNet): the graph holds both stages and their NMS, takes
    one image, and the runtime runs a batch image by image; its detections are torch's."""
    rec = recog.train("shapes:16:8", "faster_rcnn_mobilenet", epochs=1, img_size=64,
                      batch_size=8, amp="off", out=str(tmp_path / "frcnn"))  # fmt: skip
    _spread_scores(rec, "model.roi_heads.box_predictor.cls_score")
    with pytest.raises(RecogError, match="one image at a time"):
        export_run(rec, out=tmp_path / "refused.onnx", dynamic_batch=True)
    record = export_run(rec, out=tmp_path / "frcnn.onnx")
    assert record["metric"] == "map" and abs(record["drop"]) <= 0.005
    assert record["dynamic_batch"] is False and record["max_abs_diff"] < 1e-3
    exported = ExportedModel(tmp_path / "frcnn.onnx")
    assert exported.finish == "detections"
    images = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    _same_detections(rec, exported, images)
    # the file alone predicts, through the same seam, as the run does
    photo = images[0].permute(1, 2, 0).numpy()
    mine = rec.predict([photo], conf=0.01)[0]  # the weights spread above
    loaded = recog.load(tmp_path / "frcnn.onnx").predict([photo], conf=0.01)[0]
    assert len(mine.boxes) > 0 and torch.allclose(mine.scores, loaded.scores, atol=1e-4)
    # an image without detections (every score under the threshold) answers none on both
    # runtimes: OpenVINO once answered an empty output with a stale row of the image before
    quiet = copy.deepcopy(rec)
    quiet.model.model.roi_heads.score_thresh = 1.0
    onnx_file = write_onnx(quiet, tmp_path / "quiet.onnx")
    from recog.deploy.export import write_openvino

    for runtime, path in (("onnx", onnx_file),
                          ("openvino", write_openvino(onnx_file, tmp_path / "quiet.xml"))):  # fmt: skip
        answers = ExportedModel(path, runtime)(images[:2].float().div(255))
        assert [len(a["boxes"]) for a in answers] == [0, 0], runtime
    # and as TorchScript, traced on one image like the ONNX graph
    record = export_run(rec, fmt="torchscript", out=tmp_path / "frcnn.torchscript")
    assert abs(record["drop"]) <= 0.005 and record["max_abs_diff"] < 1e-3


# 30 s alone on 2 cores, 80 s beside other work (a ResNet-50 Mask R-CNN trains and exports twice over): in `make test-all`
@pytest.mark.slow
def test_mask_rcnn_exports_whole_with_its_masks(tmp_path):
    """Mask R-CNN: boxes, scores, labels and masks out of one graph; the masks are torch's."""
    rec = recog.train("shapes:8:4", "mask_rcnn", epochs=1, img_size=64, batch_size=4,
                      amp="off", out=str(tmp_path / "mrcnn"))  # fmt: skip
    _spread_scores(rec, "model.roi_heads.box_predictor.cls_score", scale=2.0)
    record = export_run(rec, out=tmp_path / "mrcnn.onnx")
    assert record["metric"] == "mask_map" and abs(record["drop"]) <= 0.005
    exported = ExportedModel(tmp_path / "mrcnn.onnx")
    val = rec.task.data.splits(rec.config).val
    pixels = torch.stack([val[i].image for i in range(2)])
    x = pixels.float().div(255)  # mask_rcnn normalizes inside (mean 0, std 1)
    with torch.inference_mode():
        ours, theirs = rec.model(x), exported(x)
    for a, b in zip(ours, theirs, strict=True):
        assert set(b) == {"boxes", "scores", "labels", "masks"}
        n = min(len(a["scores"]), len(b["scores"]))
        assert n > 0 and abs(len(a["scores"]) - len(b["scores"])) <= 1
        assert torch.allclose(a["scores"][:n], b["scores"][:n], atol=1e-4)
        assert (a["masks"][:n] - b["masks"][:n]).abs().max() < 1e-3


def test_flops_match_the_published_count_of_resnet18():
    """ResNet-18 at 224 px: 1.82 GMACs (torchvision's model card: 1.81 GFLOPS as MACs)."""
    graph = PixelGraph(ExportParts(module=torchvision.models.resnet18()), [0.5] * 3, [0.25] * 3)
    flops = flops_per_image(graph.eval(), 224)
    assert flops == pytest.approx(2 * 1.814e9, rel=0.02)


def test_bench_writes_rows_for_each_backend(digits, tmp_path, capsys, monkeypatch):
    out = tmp_path / "bench"
    # a short timing budget: the test checks the record, not the machine
    monkeypatch.setattr("recog.deploy.bench.DEFAULT_BUDGET_S", 0.2)
    code = main(["bench", str(digits.run_dir), "--batch", "1,4", "--backends",
                 "torch,torch-channels-last,onnxruntime,onnxruntime-int8", "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    record = json.loads((out / "bench.json").read_text())
    assert record["peak_gflops"] > 0 and record["flops_per_image"] > 0 and record["params"] > 0
    rows = {(r["backend"], r["batch"]): r for r in record["rows"]}
    assert set(rows) == {(b, n) for b in ("torch", "torch-channels-last", "onnxruntime",
                                          "onnxruntime-int8") for n in (1, 4)}  # fmt: skip
    for r in rows.values():
        assert r["images_per_second"] > 0
        assert r["gflops"] == pytest.approx(
            record["flops_per_image"] * r["images_per_second"] / 1e9, rel=0.02
        )
    assert rows[("torch", 1)]["latency_ms_p95"] >= rows[("torch", 1)]["latency_ms_p50"]
    assert (out / "bench.png").stat().st_size > 1000 and "x torch" in printed.out
    assert not (digits.run_dir / "export").exists()  # a bench of a run without exports writes none


def test_bench_refuses_bad_flags(digits, capsys):
    code = main(["bench", str(digits.run_dir), "--batch", "0"])
    assert code == 2 and "--batch 0" in capsys.readouterr().err
    code = main(["bench", str(digits.run_dir), "--backends", "tensorrt"])
    assert code == 2 and "tensorrt is not one of" in capsys.readouterr().err


@pytest.mark.slow  # 37 s: an fp32 export, its check, a quantization and its check
def test_yolo_int8_leaves_nothing_in_the_working_directory(yolo, tmp_path, monkeypatch):
    """onnxruntime's symbolic shape inference fails on YOLO's point grid and, by itself,
    would save a temporary model and its weights into the working directory."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    record = export_run(yolo, int8=True, out=tmp_path / "out" / "int8.onnx", calibration_images=8)
    assert record["quantization"] == "static" and record["drop"] <= 0.01
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["export.json", "int8.onnx"]


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_has_an_export_cut(name):
    """No model is refused: each names its outputs, its step after the graph and its exporter."""
    from recog.models.factory import create_model, get_spec

    spec = get_spec(name)
    size = max(spec.min_img_size, 64)
    parts = export_parts(create_model(name, num_classes=2, img_size=size), name)
    assert parts.outputs and parts.finish in {"tensor", "nms", "detections"}
    assert parts.exporter in {"dynamo", "torchscript"}
    # one image's answer, or a batch's tensors: a graph of one image answers detections
    assert parts.per_image == (parts.finish == "detections")

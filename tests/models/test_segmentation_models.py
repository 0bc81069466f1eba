"""Segmentation models: U-Net's encoders and backbone-only `--weights`, Mask R-CNN's losses.

Every model's training at odd sizes, prediction and round trip: tests/test_every_model.py.
"""

from __future__ import annotations

import pytest
import torch

from recog.errors import RecogError
from recog.models.factory import create_model, get_spec, list_models
from recog.models.weights import load_pretrained


def test_registry_has_the_issue_models():
    assert {"fcn", "fcn_resnet18", "unet", "deeplabv3", "mask_rcnn"} <= set(list_models("segment"))
    assert get_spec("mask_rcnn").instance and not get_spec("unet").instance


def test_unet_takes_another_encoder():
    model = create_model("unet", num_classes=2, img_size=64, encoder="resnet34")
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_unet_loads_a_torchvision_resnet18_state_dict_into_its_encoder(tmp_path):
    import torchvision

    backbone = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(backbone.state_dict(), path)
    model = create_model("unet", num_classes=2, img_size=64)
    fresh = load_pretrained(model, get_spec("unet"), str(path))
    assert torch.equal(model.model.encoder.conv1.weight, backbone.conv1.weight)
    assert any(k.startswith("model.decoder") for k in fresh)
    torch.save(torchvision.models.vgg11().state_dict(), tmp_path / "vgg.pth")
    with pytest.raises(RecogError, match="encoder"):
        load_pretrained(model, get_spec("unet"), str(tmp_path / "vgg.pth"))


# 20-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_mask_rcnn_trains_a_step_and_predicts_masks():
    torch.manual_seed(0)
    model = create_model("mask_rcnn", num_classes=2, img_size=64)
    images = torch.rand(2, 3, 64, 64)
    masks = torch.zeros((1, 64, 64), dtype=torch.uint8)
    masks[0, 10:30, 12:40] = 1
    targets = [
        {
            "boxes": torch.tensor([[12.0, 10.0, 40.0, 30.0]]),
            "labels": torch.tensor([1]),
            "masks": masks,
        }
    ] * 2
    model.train()
    losses = model(images, targets)
    assert {"loss", "mask", "classifier"} <= set(losses)
    losses["loss"].backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert out[0]["masks"].shape[1:] == (1, 64, 64)

"""Every segmentation model builds, runs forward at odd sizes, trains two steps, round-trips
its weights, and takes backbone-only `--weights`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recog.errors import RecogError
from recog.io import load_weights, save_weights
from recog.models.factory import create_model, get_spec, list_models
from recog.models.weights import load_pretrained

SEMANTIC = [n for n in list_models("segment") if not get_spec(n).instance]


def test_registry_has_the_issue_models():
    assert {"fcn", "fcn_resnet18", "unet", "deeplabv3", "mask_rcnn"} <= set(list_models("segment"))
    assert get_spec("mask_rcnn").instance and not get_spec("unet").instance


@pytest.mark.parametrize("name", SEMANTIC)
def test_semantic_model_builds_trains_and_round_trips(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, img_size=64)
    x = torch.randn(2, 3, 40, 35)  # not a multiple of any stride
    y = torch.randint(0, 3, (2, 40, 35))
    assert model(x).shape == (2, 3, 40, 35)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    model.eval()
    path = tmp_path / "w.safetensors"
    save_weights(path, model.state_dict(), {"model": name})
    clone = create_model(name, num_classes=3, img_size=64).eval()
    clone.load_state_dict(load_weights(path))
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x))


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

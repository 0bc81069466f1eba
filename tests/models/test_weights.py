"""Local pretrained weights: head replacement, mismatch errors, safe loading, freezing."""

from __future__ import annotations

import pytest
import torch
import torchvision

from recog.errors import RecogError
from recog.io import save_weights
from recog.models.factory import create_model, get_spec
from recog.models.weights import freeze_backbone, load_pretrained


def _imagenet_like(name: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return torchvision.models.get_model(name, weights=None, num_classes=1000).state_dict()


@pytest.mark.parametrize("fmt", ["pth", "safetensors", "wrapped"])
def test_pretrained_backbone_loads_and_head_is_replaced(tmp_path, fmt):
    source = _imagenet_like("resnet18")
    path = tmp_path / f"w.{'safetensors' if fmt == 'safetensors' else 'pth'}"
    if fmt == "safetensors":
        save_weights(path, source, {})
    else:
        torch.save(
            {"state_dict": {f"module.{k}": v for k, v in source.items()}}
            if fmt == "wrapped"
            else source,
            path,
        )
    model = create_model("resnet18", num_classes=3, img_size=64)
    fresh = load_pretrained(model, get_spec("resnet18"), str(path))
    assert sorted(fresh) == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(
        model.state_dict()["layer1.0.conv1.weight"], source["layer1.0.conv1.weight"]
    )
    assert model.fc.weight.shape == (3, 512)


def test_mismatched_architecture_names_the_first_layer(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(_imagenet_like("resnet34"), path)
    model = create_model("resnet18", num_classes=3, img_size=64)
    with pytest.raises(RecogError, match=r"layer 'layer1\.2\.") as err:
        load_pretrained(model, get_spec("resnet18"), str(path))
    assert str(path) in str(err.value)


def test_shape_mismatch_outside_the_head_is_an_error(tmp_path):
    state = _imagenet_like("resnet18")
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(RecogError, match=r"layer 'conv1.weight' has shape \(64, 3, 3, 3\)"):
        load_pretrained(
            create_model("resnet18", num_classes=3, img_size=64), get_spec("resnet18"), str(path)
        )


def test_pickled_objects_are_refused(tmp_path):
    import argparse

    path = tmp_path / "evil.pth"  # any non-tensor class needs unpickling: refused by weights_only
    torch.save({"x": argparse.Namespace(cmd="rm -rf /")}, path)
    with pytest.raises(RecogError, match="not a safetensors file or a torch state dict"):
        load_pretrained(create_model("cnn", num_classes=2, img_size=32), get_spec("cnn"), str(path))


def test_missing_cache_file_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(RecogError, match="never downloads"):
        load_pretrained(
            create_model("resnet18", num_classes=2, img_size=64),
            get_spec("resnet18"),
            "torchvision",
        )


def test_cached_torchvision_weights_are_found(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    (tmp_path / "checkpoints").mkdir()
    torch.save(_imagenet_like("resnet18"), tmp_path / "checkpoints" / url.rsplit("/", 1)[-1])
    fresh = load_pretrained(
        create_model("resnet18", num_classes=2, img_size=64), get_spec("resnet18"), "torchvision"
    )
    assert fresh == ["fc.weight", "fc.bias"]


def test_freeze_backbone_leaves_only_the_head_trainable():
    model = create_model("resnet18", num_classes=4, img_size=64)
    spec = get_spec("resnet18")
    count = freeze_backbone(model, spec)
    assert count == 512 * 4 + 4
    before = model.layer1[0].bn1.running_mean.clone()
    model.train()
    model(torch.randn(4, 3, 64, 64)).sum().backward()
    torch.testing.assert_close(model.layer1[0].bn1.running_mean, before)
    assert model.conv1.weight.grad is None and model.fc.weight.grad is not None

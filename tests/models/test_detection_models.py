"""Every registered detector answers the detection contract: losses in training, boxes in eval."""

from __future__ import annotations

import pytest
import torch

from recog.io import load_weights, save_weights
from recog.models.factory import create_model, list_models

DETECTORS = list_models("detect")


def test_registry_has_the_issue_detectors():
    assert {"yolo_n", "yolo_s", "ssdlite", "ssd300", "faster_rcnn", "faster_rcnn_mobilenet"} <= set(
        DETECTORS
    )


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_trains_two_steps_predicts_and_round_trips(name, tmp_path):
    torch.manual_seed(0)
    size = 128
    model = create_model(name, num_classes=3, img_size=size)
    images = torch.rand(2, 3, size, size)
    targets = [
        {"boxes": torch.tensor([[10.0, 20.0, 60.0, 90.0]]), "labels": torch.tensor([2])},
        {
            "boxes": torch.zeros((0, 4)),
            "labels": torch.zeros((0,), dtype=torch.int64),
        },  # a negative image
    ]
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        losses = model(images, targets)
        assert torch.isfinite(losses["loss"])
        losses["loss"].backward()
        opt.step()

    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for det in out:
        assert (
            det["boxes"].shape[1] == 4
            and det["boxes"].shape[0] == det["scores"].shape[0] == det["labels"].shape[0]
        )
        assert det["labels"].numel() == 0 or (
            0 <= int(det["labels"].min()) and int(det["labels"].max()) < 3
        )

    path = tmp_path / "w.safetensors"
    save_weights(path, model.state_dict(), {"model": name})
    clone = create_model(name, num_classes=3, img_size=size).eval()
    clone.load_state_dict(load_weights(path))
    with torch.no_grad():
        again = clone(images)
    torch.testing.assert_close(again[0]["scores"], out[0]["scores"])

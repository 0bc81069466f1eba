"""The segmentation tasks: collation, losses, sliding-window inference, records, drawing."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from recog.api.facet import OUTPUT
from recog.tasks.instance import InstanceSegmentTask
from recog.tasks.segment import SegmentTask
from recog.types import IGNORE_INDEX, Prediction, Sample, Target

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def task(img_size=16, **kw):
    return SegmentTask(["background", "a", "b"], MEAN, STD, img_size=img_size, **kw)


class PixelModel(nn.Module):
    """A 1x1 convolution: its output at a pixel depends on that pixel alone."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x) * 5


def decode_png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_collate_pads_images_and_masks_with_ignore():
    samples = [
        Sample(
            torch.full((3, 4, 6), 9, dtype=torch.uint8),
            Target(mask=torch.ones(4, 6, dtype=torch.long)),
        ),
        Sample(
            torch.full((3, 5, 3), 9, dtype=torch.uint8),
            Target(mask=torch.ones(5, 3, dtype=torch.long)),
        ),
    ]
    batch = task().collate(samples)
    assert batch.images.shape == (2, 3, 5, 6) and batch.targets.shape == (2, 5, 6)
    assert (batch.targets[0, 4] == IGNORE_INDEX).all() and (
        batch.targets[1, :, 3:] == IGNORE_INDEX
    ).all()
    assert batch.meta[1]["size"] == (5, 3)


@pytest.mark.parametrize("loss", ["ce", "dice", "ce_dice"])
def test_losses_ignore_255_and_return_their_parts(loss):
    t = task(loss=loss, class_weights=torch.tensor([0.5, 1.0, 2.0]))
    images = torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8)
    target = torch.randint(0, 3, (2, 8, 8))
    model = PixelModel()
    from recog.types import Batch

    parts = t.loss(model, Batch(images, target))
    assert set(parts) == {"loss", *loss.split("_")}
    parts["loss"].backward()
    # a batch that is all ignore (a crop of padding) gives a finite, zero loss
    ignored = t.loss(model, Batch(images, torch.full_like(target, IGNORE_INDEX)))
    assert ignored["loss"].item() == 0.0


def test_sliding_window_equals_whole_image_for_a_per_pixel_model():
    model = PixelModel().eval()
    image = torch.randint(0, 255, (1, 3, 37, 50), dtype=torch.uint8)
    tiled = task(img_size=8).predict(model, image)[0].mask  # 16 px windows
    whole = task(img_size=64).predict(model, image)[0].mask
    assert tiled.shape == (37, 50)
    assert torch.equal(tiled, whole)


def test_predictions_are_cropped_to_each_images_size():
    model = PixelModel().eval()
    images = torch.zeros((2, 3, 20, 20), dtype=torch.uint8)
    preds = task().predict(model, images, [{"size": (20, 20)}, {"size": (12, 7)}])
    assert preds[0].mask.shape == (20, 20) and preds[1].mask.shape == (12, 7)


def test_semantic_record_draw_and_saved_mask(tmp_path):
    t = task()
    mask = torch.zeros((6, 10), dtype=torch.long)
    mask[:, 5:] = 2
    pred = Prediction(mask=mask)
    record = t.to_record(pred)
    json.dumps(record)
    seg = record["segmentation"]
    assert (seg["width"], seg["height"]) == (10, 6)
    assert seg["pixel_fraction"] == {"background": 0.5, "a": 0.0, "b": 0.5}
    assert (decode_png(seg["mask_png"]) == mask.numpy()).all()
    drawn = t.draw(torch.zeros((3, 6, 10), dtype=torch.uint8), pred)
    assert drawn.shape == (3, 6, 10) and drawn[:, :, :5].sum() == 0 and drawn[:, :, 5:].sum() > 0
    (written,) = OUTPUT.of(t).save(t, pred, tmp_path, "img")
    assert written.name == "img_mask.png"
    assert (np.asarray(Image.open(written)) == mask.numpy()).all()


def test_instance_record_and_coco_json(tmp_path):
    t = InstanceSegmentTask(["cat", "dog"], (0, 0, 0), (1, 1, 1), img_size=32)
    masks = torch.zeros((3, 8, 12), dtype=torch.bool)
    masks[0, :4, :4] = True
    masks[1, 4:, 6:] = True
    masks[2, :, :] = True
    pred = Prediction(
        boxes=torch.tensor([[0, 0, 4, 4], [6, 4, 12, 8], [0, 0, 12, 8]], dtype=torch.float32),
        labels=torch.tensor([0, 1, 0]),
        scores=torch.tensor([0.9, 0.8, 0.1]),  # the third is below the display threshold
        masks=masks,
    )
    record = t.to_record(pred)
    json.dumps(record)
    assert [d["label"] for d in record["detections"]] == ["cat", "dog"]
    index = decode_png(record["segmentation"]["mask_png"])
    assert index.shape == (8, 12)
    assert (index[:4, :4] == 1).all() and (index[4:, 6:] == 2).all() and index[6, 2] == 0
    (written,) = OUTPUT.of(t).save(t, pred, tmp_path, "img")
    results = json.loads(written.read_text())
    assert len(results) == 3 and results[1]["category"] == "dog"
    assert results[1]["bbox"] == [6.0, 4.0, 6.0, 4.0] and "counts" in results[1]["segmentation"]
    assert t.draw(torch.zeros((3, 8, 12), dtype=torch.uint8), pred).shape == (3, 8, 12)


def test_instance_predictions_return_to_original_pixels():
    class Fixed(nn.Module):
        def forward(self, x):
            m = torch.zeros((1, 1, 32, 32))
            m[..., :8, :16] = 1.0  # the whole letterboxed 16x32 -> 8x16 region of a 20x40 image
            return [
                {
                    "boxes": torch.tensor([[0.0, 0.0, 16.0, 8.0]]),
                    "scores": torch.tensor([0.9]),
                    "labels": torch.tensor([0]),
                    "masks": m,
                }
            ]

    t = InstanceSegmentTask(["x"], (0, 0, 0), (1, 1, 1), img_size=32)
    (pred,) = t.predict(
        Fixed(),
        torch.zeros((1, 3, 32, 32), dtype=torch.uint8),
        [{"scale": 0.8, "orig_size": (10, 20)}],
    )
    assert pred.masks.shape == (1, 10, 20) and pred.masks.all()
    assert pred.boxes.tolist() == [[0.0, 0.0, 20.0, 10.0]]


def test_mask_rcnn_runs_show_only_confident_instances(tmp_path):
    """Mask R-CNN's other-class echoes of an object (score ~0.3) stay out of the pictures and
    the served record, but stay in the COCO results that mAP is computed from."""
    from recog.api import resolve_config
    from recog.config import TrainRequest
    from recog.models.factory import get_spec

    res, _, task_cls = resolve_config(
        TrainRequest(data="shapes", task="segment", model="mask_rcnn", img_size=64)
    )
    assert task_cls is InstanceSegmentTask
    t = task_cls.from_config(res.config, ["cat", "dog"], get_spec("mask_rcnn"))
    assert isinstance(t, InstanceSegmentTask)
    masks = torch.zeros((2, 8, 8), dtype=torch.bool)
    masks[:, 2:6, 2:6] = True
    pred = Prediction(
        boxes=torch.tensor([[2, 2, 6, 6], [2, 2, 6, 6]], dtype=torch.float32),
        labels=torch.tensor([0, 1]),
        scores=torch.tensor([0.95, 0.3]),
        masks=masks,
    )
    assert [d["label"] for d in t.to_record(pred)["detections"]] == ["cat"]
    (written,) = OUTPUT.of(t).save(t, pred, tmp_path, "x")
    assert [r["category"] for r in json.loads(written.read_text())] == ["cat", "dog"]

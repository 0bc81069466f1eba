"""The YOLO-style mosaic: boxes stay on their objects, and it switches off for the last epochs."""

from __future__ import annotations

import torch

from recog.data.detection_dataset import DetectionDataset, DetectionItem, mosaic


def _item(colour: int, box: tuple[int, int, int, int], size: tuple[int, int]) -> DetectionItem:
    image = torch.zeros((3, *size), dtype=torch.uint8)
    x1, y1, x2, y2 = box
    image[:, y1:y2, x1:x2] = colour
    return DetectionItem(
        image, torch.tensor([box], dtype=torch.float32), torch.tensor([colour]), "x"
    )


def test_mosaic_boxes_cover_their_objects():
    items = [
        _item(50, (10, 20, 40, 60), (80, 100)),
        _item(100, (0, 0, 30, 30), (64, 64)),
        _item(150, (50, 5, 90, 45), (50, 120)),
        _item(200, (20, 20, 60, 60), (100, 80)),
    ]
    out = mosaic(items, 64, center=(70.0, 58.0))
    assert out.image.shape == (3, 128, 128)
    assert out.labels.tolist() == [50, 100, 150, 200]
    for box, colour in zip(out.boxes.round().long().tolist(), out.labels.tolist(), strict=True):
        x1, y1, x2, y2 = box
        assert x2 > x1 and y2 > y1
        inside = out.image[0, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].float()
        # letterbox resizing blurs edges only: the box interior is the object's colour
        assert (inside - colour).abs().mean() < 3, colour
    # nothing of an object's colour lies outside its box
    for box, colour in zip(out.boxes.round().long().tolist(), out.labels.tolist(), strict=True):
        mask = out.image[0] == colour
        mask[box[1] : box[3], box[0] : box[2]] = False
        assert int(mask.sum()) == 0


def test_mosaic_is_clipped_at_the_canvas_edge():
    items = [_item(90, (0, 0, 64, 64), (64, 64)) for _ in range(4)]
    out = mosaic(items, 64, center=(20.0, 100.0))
    assert float(out.boxes.min()) >= 0 and float(out.boxes.max()) <= 128
    widths = (out.boxes[:, 2] - out.boxes[:, 0]).tolist()
    assert sorted(round(w) for w in widths) == [20, 20, 64, 64]


def test_mosaic_switches_off_for_the_last_epochs():
    items = [_item(60 + 10 * i, (4, 4, 20, 20), (32, 32)) for i in range(8)]
    data = DetectionDataset(
        lambda i: items[i], len(items), img_size=32, mosaic=1.0, mosaic_off_epochs=2
    )
    data.set_epoch(0, 5)
    assert data[0].path.startswith("mosaic(") and len(data[0].target.labels) == 4
    data.set_epoch(3, 5)
    assert data[0].path == "x" and len(data[0].target.labels) == 1

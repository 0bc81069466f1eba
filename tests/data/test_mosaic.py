"""The YOLO-style mosaic: boxes stay on their objects, and it switches off for the last epochs."""

from __future__ import annotations

import torch

from recog.data.detect import DetectionDataset, DetectionItem, mosaic


def _item(colour: int, box: tuple[int, int, int, int], size: tuple[int, int]) -> DetectionItem:
    image = torch.zeros((3, *size), dtype=torch.uint8)
    x1, y1, x2, y2 = box
    image[:, y1:y2, x1:x2] = colour
    return DetectionItem(
        image, torch.tensor([box], dtype=torch.float32), torch.tensor([colour]), "x"
    )


def test_mosaic_boxes_cover_their_objects():
    items = [
        _item(50, (40, 50, 95, 75), (80, 100)),
        _item(100, (0, 34, 30, 64), (64, 64)),
        _item(150, (70, 5, 115, 45), (50, 120)),
        _item(200, (20, 10, 60, 50), (100, 80)),
    ]
    out = mosaic(items, 64, center=(64.0, 64.0))
    assert out.image.shape == (3, 64, 64)
    assert out.labels.tolist() == [50, 100, 150, 200]
    visible = 0
    for box, colour in zip(out.boxes.round().long().tolist(), out.labels.tolist(), strict=True):
        x1, y1, x2, y2 = box
        mask = out.image[0] == colour
        if x2 - x1 >= 4 and y2 - y1 >= 4:
            visible += 1
            # letterbox resizing blurs edges only: the box interior is the object's colour
            inside = out.image[0, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].float()
            assert (inside - colour).abs().mean() < 3, colour
        # nothing of an object's colour lies outside its box
        mask[y1:y2, x1:x2] = False
        assert int(mask.sum()) == 0, colour
    assert visible == 4


def test_mosaic_keeps_the_letterboxed_scale_and_clips_at_the_window():
    items = [_item(90, (0, 0, 64, 64), (64, 64)) for _ in range(4)]
    out = mosaic(items, 64, center=(40.0, 80.0))
    assert float(out.boxes.min()) >= 0 and float(out.boxes.max()) <= 64
    # the window spans canvas [32, 96): tiles meet at (40, 80) -> widths 8 and 56, heights 48 and 16
    widths = sorted(round(w) for w in (out.boxes[:, 2] - out.boxes[:, 0]).tolist())
    heights = sorted(round(h) for h in (out.boxes[:, 3] - out.boxes[:, 1]).tolist())
    assert widths == [8, 8, 56, 56] and heights == [16, 16, 48, 48]


def test_mosaic_switches_off_for_the_last_epochs():
    items = [_item(60 + 10 * i, (4, 4, 28, 28), (32, 32)) for i in range(8)]
    data = DetectionDataset(
        lambda i: items[i], len(items), img_size=32, mosaic=1.0, mosaic_off_epochs=2
    )
    data.set_epoch(0, 5)
    assert data[0].path.startswith("mosaic(")
    data.set_epoch(3, 5)
    assert data[0].path == "x" and len(data[0].target.labels) == 1

"""What the report draws of each task: training panels, segmentation triplets, the legend, instance labels."""

from __future__ import annotations

import torch
from torchvision.ops import masks_to_boxes

from recog.data.classify import batch_mix
from recog.data.label_stats import instance_labels
from recog.data.segment import load_segmentation
from recog.report.views import (
    MIN_SIDE,
    box_panels,
    legend,
    mask_panels,
    mixed_panels,
    triplets,
)
from recog.tasks.drawing import palette
from recog.types import Batch, Prediction, Sample, Target

RED, GREEN = (255, 0, 0), (0, 255, 0)


def test_box_panels_draw_each_target_box_and_mask_enlarged():
    image = torch.zeros((3, 32, 32), dtype=torch.uint8)
    masks = torch.zeros((1, 32, 32), dtype=torch.bool)
    masks[0, 4:12, 4:12] = True
    targets = [
        {"boxes": torch.tensor([[4.0, 4, 12, 12]]), "labels": torch.tensor([1]), "masks": masks}
    ]
    ((drawn, title, flag),) = box_panels(Batch(image[None], targets), ["cat", "dog"], [RED, GREEN])
    factor = MIN_SIDE // 32
    assert drawn.shape == (3, 32 * factor, 32 * factor) and title == "1 boxes" and flag is None
    # the mask is tinted in its class colour (green), the rest of the image untouched
    inside = drawn[:, 8 * factor, 8 * factor]
    assert inside[1] > 0 and inside[0] == 0
    assert drawn[:, 20 * factor :, 20 * factor :].sum() == 0


def test_mask_panels_and_triplets_colour_only_the_shown_classes():
    mask = torch.zeros((8, 8), dtype=torch.int64)
    mask[:4] = 1
    mask[7, 7] = 255  # ignore stays bare
    image = torch.zeros((3, 8, 8), dtype=torch.uint8)
    ((panel, title, _),) = mask_panels(Batch(image[None], mask[None]), [RED, GREEN], [1])
    assert title == "2 classes" and panel[1, :4].gt(0).all() and panel[:, 4:].sum() == 0
    pred = Prediction(mask=torch.ones((8, 8), dtype=torch.int64))
    sample = Sample(image=image, target=Target(mask=mask), path="x", orig_size=(8, 8))
    rows = triplets([(sample, pred)], [RED, GREEN], [1], lambda p, s: 0.5)
    assert [t for _, t, _ in rows] == ["image", "truth", "prediction, mIoU 0.50"]
    assert rows[0][0].sum() == 0 and rows[1][0][:, 4:].sum() == 0 and rows[2][0][1].gt(0).all()
    assert legend(["background", "cat"], [RED, GREEN], [1]) == [("cat", GREEN)]


def test_mixed_panels_name_the_two_shares_of_a_mixed_label():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0])
    mean, std = torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.25)

    def normalize(x):
        return (x.float() / 255 - mean) / std

    plain = mixed_panels(
        Batch(images, labels), ["a", "b", "c"], normalize=normalize, mean=mean, std=std, mix=None
    )
    assert [t for _, t, _ in plain] == ["a", "b", "c", "a"] and torch.equal(plain[0][0], images[0])
    mixed = mixed_panels(
        Batch(images, labels),
        ["a", "b", "c"],
        normalize=normalize,
        mean=mean,
        std=std,
        mix=batch_mix(mixup=1.0, cutmix=0.0, num_classes=3),
    )
    assert all(" + " in t or t.endswith("1.00") for _, t, _ in mixed)
    assert all(image.dtype == torch.uint8 and image.shape == (3, 8, 8) for image, _, _ in mixed)


def test_instance_labels_count_instances_and_measure_their_masks():
    splits = load_segmentation("shapes:6:2", instance=True, img_size=64)
    data = instance_labels(splits.train, splits.class_names).data
    counts = torch.zeros(len(splits.class_names), dtype=torch.int64)
    wh = []
    for i in range(len(splits.train)):
        masks, labels = splits.train.instances(i)
        counts += torch.bincount(labels, minlength=len(splits.class_names))
        boxes = masks_to_boxes(masks).double()
        boxes[:, 2:] += 1  # last pixel -> edge
        h, w = masks.shape[-2:]
        wh += ((boxes[:, 2:] - boxes[:, :2]) / torch.tensor([w, h])).tolist()
    assert data["counts"] == counts.tolist() and data["count_of"] == "instances"
    assert torch.allclose(
        torch.tensor(data["box_wh"], dtype=torch.float64), torch.tensor(wh, dtype=torch.float64)
    )
    assert abs(sum(data["areas"]) - 1) < 1e-9
    assert len(palette(25)) == 25 and palette(25)[0] == palette(25)[20]

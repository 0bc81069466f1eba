"""Segmentation metrics against plain references: numpy confusion matrix, torchmetrics, COCO."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recog.metrics.segmentation import InstanceAccumulator, SemanticAccumulator, encode_rle
from recog.types import IGNORE_INDEX, Prediction, Target


def numpy_reference(truths, preds, num_classes):
    """mIoU, mean Dice and pixel accuracy from a numpy confusion matrix (255 ignored)."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(truths, preds, strict=True):
        t, p = t.numpy().ravel(), p.numpy().ravel()
        keep = t != IGNORE_INDEX
        np.add.at(cm, (t[keep], p[keep]), 1)
    tp = np.diag(cm).astype(float)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    union = tp + fp + fn
    present = union > 0
    iou = tp[present] / union[present]
    dice = 2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])
    return (
        iou.mean(),
        dice.mean(),
        tp.sum() / cm.sum(),
        dict(zip(np.flatnonzero(present), iou, strict=True)),
    )


def random_masks(seed, n=6, classes=5, size=(17, 23)):
    g = torch.Generator().manual_seed(seed)
    truths, preds = [], []
    for _ in range(n):
        t = torch.randint(0, classes, size, generator=g)
        t[torch.rand(size, generator=g) < 0.1] = IGNORE_INDEX
        p = torch.where(
            torch.rand(size, generator=g) < 0.6,
            t.clamp(max=classes - 1),
            torch.randint(0, classes, size, generator=g),
        )
        truths.append(t)
        preds.append(p)
    return truths, preds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_miou_dice_and_pixel_accuracy_equal_numpy_reference(seed):
    classes = 5
    truths, preds = random_masks(seed, classes=classes)
    preds[0][preds[0] == 4] = 3  # make sure some class can be absent from one image
    names = [f"c{k}" for k in range(classes)]
    acc = SemanticAccumulator(names)
    acc.update([Prediction(mask=p) for p in preds], [Target(mask=t) for t in truths])
    got = acc.compute()
    miou, dice, pixel_acc, per_class = numpy_reference(truths, preds, classes)
    assert got["miou"] == pytest.approx(miou, abs=1e-12)
    assert got["dice"] == pytest.approx(dice, abs=1e-12)
    assert got["pixel_acc"] == pytest.approx(pixel_acc, abs=1e-12)
    assert got["per_class"] == pytest.approx({names[k]: v for k, v in per_class.items()})


def test_agrees_with_torchmetrics_and_ignores_absent_classes():
    from torchmetrics.functional.classification import multiclass_jaccard_index

    truths, preds = random_masks(5, classes=4)
    acc = SemanticAccumulator(["a", "b", "c", "d", "never"])  # class 4 appears nowhere
    acc.update([Prediction(mask=p) for p in preds], [Target(mask=t) for t in truths])
    got = acc.compute()
    assert "never" not in got["per_class"]
    tm = multiclass_jaccard_index(
        torch.stack(preds),
        torch.stack(truths),
        num_classes=4,
        ignore_index=IGNORE_INDEX,
        average="macro",
    )
    assert got["miou"] == pytest.approx(float(tm), abs=1e-6)


def test_merge_equals_one_pass_and_perfect_prediction_scores_one():
    truths, preds = random_masks(3)
    names = list("abcde")
    whole, first, second = (SemanticAccumulator(names) for _ in range(3))
    whole.update([Prediction(mask=p) for p in preds], [Target(mask=t) for t in truths])
    first.update([Prediction(mask=p) for p in preds[:2]], [Target(mask=t) for t in truths[:2]])
    second.update([Prediction(mask=p) for p in preds[2:]], [Target(mask=t) for t in truths[2:]])
    first.merge(second)
    assert first.compute() == whole.compute()
    perfect = SemanticAccumulator(names)
    perfect.update(
        [Prediction(mask=t.clamp(max=4)) for t in truths], [Target(mask=t) for t in truths]
    )
    assert perfect.compute()["miou"] == 1.0 and perfect.compute()["pixel_acc"] == 1.0


def test_size_mismatch_is_an_error():
    acc = SemanticAccumulator(["a", "b"])
    with pytest.raises(ValueError, match="prediction"):
        acc.update(
            [Prediction(mask=torch.zeros(4, 4, dtype=torch.long))],
            [Target(mask=torch.zeros(4, 5, dtype=torch.long))],
        )


def _instances(boxes, labels, h=40, w=40):
    masks = torch.zeros((len(boxes), h, w), dtype=torch.bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        masks[i, y1:y2, x1:x2] = True
    return torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels), masks


def test_instance_mask_map_is_one_for_perfect_and_lower_for_shifted_masks():
    boxes, labels, masks = _instances([(2, 2, 12, 12), (20, 20, 35, 30)], [0, 1])
    truth = Target(boxes=boxes, labels=labels, masks=masks)
    perfect = InstanceAccumulator(["a", "b"])
    perfect.update(
        [Prediction(boxes=boxes, labels=labels, masks=masks, scores=torch.tensor([0.9, 0.8]))],
        [truth],
    )
    got = perfect.compute()
    assert got["mask_map"] == pytest.approx(1.0) and got["map"] == pytest.approx(1.0)
    assert set(got["per_class"]) == {"a", "b"}
    # shift the second mask so its IoU is 0.5 < x < 0.75: AP50 stays, AP75 drops
    _, _, shifted = _instances([(2, 2, 12, 12), (23, 20, 38, 30)], [0, 1])
    worse = InstanceAccumulator(["a", "b"])
    worse.update(
        [Prediction(boxes=boxes, labels=labels, masks=shifted, scores=torch.tensor([0.9, 0.8]))],
        [truth],
    )
    got = worse.compute()
    assert got["mask_map50"] == pytest.approx(1.0)
    assert got["mask_map75"] == pytest.approx(0.5)
    assert got["map"] == pytest.approx(1.0)  # the boxes were not moved


def test_rle_round_trip():
    from pycocotools import mask as mask_utils

    _, _, masks = _instances([(1, 3, 9, 7)], [0], h=10, w=12)
    rle = encode_rle(masks)[0]
    assert isinstance(rle["counts"], str) and rle["size"] == [10, 12]
    assert (mask_utils.decode(rle).astype(bool) == masks[0].numpy()).all()

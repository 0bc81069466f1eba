"""DetectionAccumulator against plain pycocotools on generated scenes, plus edge cases."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from recog.metrics.detection import DetectionAccumulator
from recog.report.plots import draw_figures
from recog.types import Prediction, Target

NAMES = ["cat", "dog", "bird"]
TOL = 1e-6
W, H = 640, 480


def _scene(
    seed: int, n_images: int = 50, n_classes: int = len(NAMES)
) -> tuple[list[Prediction], list[Target]]:
    """Realistic detections: jittered ground truth (some with the wrong class, some
    duplicated, ~15% missed), random false positives, and every 7th image without truth.
    Box sides are log-uniform in 6..250 px so all three COCO size ranges occur."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    def boxes(n: int) -> torch.Tensor:
        wh = torch.exp(np.log(6) + rand(n, 2) * (np.log(250) - np.log(6)))
        xy = rand(n, 2) * (torch.tensor([W, H]) - wh)
        return torch.cat([xy, xy + wh], dim=1)

    preds, targets = [], []
    for i in range(n_images):
        n_gt = 0 if i % 7 == 0 else int(torch.randint(1, 9, (1,), generator=g))
        gt_boxes = boxes(n_gt)
        gt_labels = torch.randint(0, n_classes, (n_gt,), generator=g)
        found = rand(n_gt) > 0.15
        twice = found & (rand(n_gt) < 0.2)
        src = torch.cat([gt_boxes[found], gt_boxes[twice]])
        src_labels = torch.cat([gt_labels[found], gt_labels[twice]])
        side = (src[:, 2:] - src[:, :2]).repeat(1, 2)
        tp_boxes = src + torch.randn(src.shape, generator=g) * 0.08 * side
        tp_boxes[:, 2:] = torch.maximum(tp_boxes[:, 2:], tp_boxes[:, :2] + 1)
        wrong = rand(len(src_labels)) < 0.1
        tp_labels = torch.where(
            wrong, torch.randint(0, n_classes, src_labels.shape, generator=g), src_labels
        )
        tp_scores = 0.3 + 0.7 * rand(len(src_labels))
        n_fp = int(torch.randint(0, 6, (1,), generator=g))
        pred = Prediction(
            boxes=torch.cat([tp_boxes, boxes(n_fp)]),
            labels=torch.cat([tp_labels, torch.randint(0, n_classes, (n_fp,), generator=g)]),
            scores=torch.cat([tp_scores, 0.6 * rand(n_fp)]),
        )
        preds.append(pred)
        targets.append(Target(boxes=gt_boxes, labels=gt_labels))
    return preds, targets


def _filled(preds, targets, names=NAMES, **kw) -> DetectionAccumulator:
    acc = DetectionAccumulator(names, **kw)
    acc.update(preds, targets)
    return acc


def _pycocotools(gt: dict, detections: list[dict]) -> dict:
    """Plain pycocotools on the same COCO records: summary stats and AP per category name."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(detections)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    out = dict(map=s[0], map50=s[1], map75=s[2], map_small=s[3], map_medium=s[4], map_large=s[5])
    out["mar_100"] = s[8]
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    out["per_class"] = {}
    out["per_class_ap50"] = {}
    for k, cat_id in enumerate(ev.params.catIds):
        name = coco_gt.cats[cat_id]["name"]
        p = precision[:, :, k, 0, -1]
        if (p > -1).any():
            out["per_class"][name] = float(p[p > -1].mean())
            out["per_class_ap50"][name] = float(p[0][p[0] > -1].mean())
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocotools(seed):
    preds, targets = _scene(seed)
    acc = _filled(preds, targets)
    ours = acc.compute()
    ref = _pycocotools(*acc.coco_dicts())
    for key in ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar_100"):
        assert ref[key] >= 0, f"{key} undefined in the reference: the scene lacks that size"
        assert ours[key] == pytest.approx(ref[key], abs=TOL), key
    assert 0.2 < ours["map"] < 0.9  # a realistic, not a degenerate, scene
    assert ours["per_class"].keys() == ref["per_class"].keys() == set(NAMES)
    for name in NAMES:
        assert ours["per_class"][name] == pytest.approx(ref["per_class"][name], abs=TOL)
        assert ours["per_class_ap50"][name] == pytest.approx(ref["per_class_ap50"][name], abs=TOL)
    assert ours["num_images"] == 50
    assert ours["num_ground_truth"] == sum(len(t.labels) for t in targets)
    assert sum(ours["per_class_num_ground_truth"].values()) == ours["num_ground_truth"]
    assert all(isinstance(v, float) for k, v in ours.items() if k.startswith("ma"))


def test_coco_dicts_layout():
    preds, targets = _scene(0, n_images=3)
    gt, dets = _filled(preds, targets).coco_dicts()
    assert [im["id"] for im in gt["images"]] == [1, 2, 3]
    assert [c["id"] for c in gt["categories"]] == [1, 2, 3]
    assert [c["name"] for c in gt["categories"]] == NAMES
    ann = gt["annotations"][0]
    x1, y1, x2, y2 = targets[ann["image_id"] - 1].boxes[0].tolist()
    assert ann["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
    assert ann["area"] == pytest.approx((x2 - x1) * (y2 - y1))
    assert ann["iscrowd"] == 0 and ann["id"] == 1
    assert len(dets) == sum(len(p.scores) for p in preds)
    assert set(dets[0]) == {"image_id", "category_id", "bbox", "score"}


def test_perfect_predictions_score_one():
    _, targets = _scene(3)
    preds = [
        Prediction(boxes=t.boxes.clone(), labels=t.labels.clone(), scores=torch.ones(len(t.labels)))
        for t in targets
    ]
    out = _filled(preds, targets).compute()
    for key in ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar_100"):
        assert out[key] == pytest.approx(1.0, abs=TOL), key
    assert all(v == pytest.approx(1.0) for v in out["per_class"].values())


def test_no_predictions_score_zero():
    _, targets = _scene(4)
    preds = [Prediction() for _ in targets]  # no fields at all: no boxes
    out = _filled(preds, targets).compute()
    for key in ("map", "map50", "map75", "mar_100"):
        assert out[key] == 0.0
    assert out["per_class"] == {name: 0.0 for name in NAMES}
    assert out["num_ground_truth"] > 0


def test_merge_of_halves_equals_one_pass():
    preds, targets = _scene(5)
    whole = _filled(preds, targets).compute()
    first = _filled(preds[:20], targets[:20])
    first.merge(_filled(preds[20:], targets[20:]))
    merged = first.compute()
    assert merged.keys() == whole.keys()
    for key, value in whole.items():
        if isinstance(value, dict):
            assert merged[key] == pytest.approx(value, abs=1e-12), key
        else:
            assert merged[key] == pytest.approx(value, abs=1e-12), key


def test_batching_does_not_matter():
    preds, targets = _scene(6)
    acc = DetectionAccumulator(NAMES)
    for i in range(0, len(preds), 8):
        acc.update(preds[i : i + 8], targets[i : i + 8])
    assert acc.compute()["map"] == pytest.approx(
        _filled(preds, targets).compute()["map"], abs=1e-12
    )


def test_empty_accumulator(tmp_path):
    acc = DetectionAccumulator(NAMES)
    out = acc.compute()
    assert out["map"] == out["map50"] == out["mar_100"] == 0.0
    assert out["per_class"] == {} and out["num_images"] == 0 and out["num_ground_truth"] == 0
    assert draw_figures(acc.figures(NAMES), tmp_path) == []
    assert acc.confusion_matrix().sum() == 0


def test_no_ground_truth_at_all(tmp_path):
    preds, _ = _scene(7, n_images=5)
    acc = _filled(preds, [Target() for _ in preds])
    out = acc.compute()
    assert out["map"] == out["map50"] == out["map75"] == out["mar_100"] == 0.0
    assert out["per_class"] == {}
    written = draw_figures(
        acc.figures(NAMES), tmp_path
    )  # no PR curve without truth; the matrix still works
    assert [p.name for p in written] == ["detection_confusion.png"]


def test_class_without_ground_truth_is_omitted():
    preds, targets = _scene(8, n_classes=2)
    out = _filled(preds, targets, names=[*NAMES[:2], "never"]).compute()
    assert set(out["per_class"]) == set(NAMES[:2])
    assert out["per_class_num_ground_truth"]["never"] == 0
    assert out["map"] == pytest.approx(np.mean(list(out["per_class"].values())), abs=TOL)


def test_max_dets_limits_recall():
    preds, targets = _scene(9)
    small = _filled(preds, targets, max_dets=1).compute()
    full = _filled(preds, targets).compute()
    assert "mar_1" in small and "mar_100" not in small
    assert small["mar_1"] < full["mar_100"]


def test_confusion_matrix_counts():
    target = Target(
        boxes=torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]]),
        labels=torch.tensor([0, 1, 2]),
    )
    pred = Prediction(
        boxes=torch.tensor(
            [
                [0.0, 0, 10, 10],
                [21, 21, 40, 40],
                [20, 20, 40, 40],
                [100, 100, 120, 120],
                [50, 50, 60, 60],
            ]
        ),
        labels=torch.tensor([0, 2, 1, 1, 2]),
        scores=torch.tensor([0.9, 0.8, 0.7, 0.6, 0.1]),  # the last is below 0.25: ignored
    )
    m = _filled([pred], [target]).confusion_matrix()
    expected = torch.zeros(4, 4, dtype=torch.int64)
    expected[0, 0] = 1  # exact hit
    expected[1, 1] = 1  # the IoU-1.0 box wins the dog, though the 0.8 bird came first
    expected[3, 2] = 1  # ... so that bird is a false positive
    expected[3, 1] = 1  # a box on nothing
    expected[2, 3] = 1  # the third object is missed (its only box scored 0.1)
    assert torch.equal(m, expected)


def test_plots_write_pngs(tmp_path):
    preds, targets = _scene(10)
    acc = _filled(preds, targets)
    written = draw_figures(acc.figures(NAMES), tmp_path / "plots")
    assert sorted(p.name for p in written) == [
        "box_reliability.png",
        "detection_confusion.png",
        "f1_confidence.png",
        "pr_curves.png",
    ]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 5_000
    m = acc.confusion_matrix()
    assert m.shape == (4, 4) and m[3, 3] == 0
    assert int(m[:3].sum()) == acc.num_ground_truth  # every true box lands in one cell


def test_rejects_bad_input():
    acc = DetectionAccumulator(NAMES)
    with pytest.raises(ValueError, match="targets"):
        acc.update([Prediction()], [])
    with pytest.raises(ValueError, match="labels must lie"):
        acc.update([Prediction()], [Target(boxes=torch.zeros(1, 4), labels=torch.tensor([3]))])
    with pytest.raises(ValueError, match="scores"):
        acc.update([Prediction(boxes=torch.zeros(1, 4), labels=torch.tensor([0]))], [Target()])
    with pytest.raises(TypeError):
        acc.merge(object())  # type: ignore[arg-type]


def test_box_scores_are_measured_against_iou_matched_precision():
    from recog.metrics.box_calibration import match_boxes

    target = Target(
        boxes=torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 40]]), labels=torch.tensor([0, 1])
    )
    pred = Prediction(
        boxes=torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 40, 40], [60, 60, 70, 70]]),
        labels=torch.tensor([0, 0, 0, 1]),
        scores=torch.tensor([0.9, 0.8, 0.7, 0.6]),
    )
    # the 0.9 box takes the first object, its 0.8 double is left over, the 0.7 box has
    # the wrong class for the second object, the 0.6 box is on nothing
    matched = match_boxes(pred.boxes, pred.labels, pred.scores, target.boxes, target.labels)
    assert matched.tolist() == [True, False, False, False]
    acc = _filled([pred], [target])
    bins = acc.box_calibration()
    expected = (abs(0.9 - 1) + abs(0.8 - 0) + abs(0.7 - 0) + abs(0.6 - 0)) / 4  # one box a bin
    assert bins["ece"] == pytest.approx(expected, abs=1e-6)
    assert acc.compute()["box_ece"] == pytest.approx(expected, abs=1e-6)
    assert sum(bins["count"]) == 4


def test_perfectly_scored_boxes_have_no_calibration_error():
    target = Target(boxes=torch.tensor([[0.0, 0, 10, 10]]), labels=torch.tensor([0]))
    pred = Prediction(
        boxes=torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 60, 60]]),
        labels=torch.tensor([0, 0]),
        scores=torch.tensor([1.0, 0.0]),
    )
    assert _filled([pred], [target]).compute()["box_ece"] == pytest.approx(0.0, abs=1e-6)

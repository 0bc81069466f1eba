"""The F1-confidence curve and its best threshold, against brute force on hand-made boxes."""

from __future__ import annotations

import torch

from recog.metrics.box_calibration import f1_confidence
from recog.metrics.detection import DetectionAccumulator
from recog.types import Prediction, Target


def _brute_force(scores: list[float], matched: list[bool], truth: int) -> tuple[float, float]:
    """Try every distinct score as the threshold, counting kept boxes one by one; the best F1
    and its threshold (the highest threshold among equal F1s)."""
    best_t, best_f1 = 0.0, 0.0
    for t in sorted(set(scores), reverse=True):
        kept = [m for s, m in zip(scores, matched, strict=True) if s >= t]
        tp = sum(kept)
        precision = tp / len(kept)
        recall = tp / truth
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        if f1 > best_f1 + 1e-12:
            best_t, best_f1 = t, f1
    return best_t, best_f1


def test_best_threshold_is_the_brute_force_one_on_hand_made_matches():
    # 8 boxes for 5 objects: high scores mostly right, a wrong 0.85, ties at 0.4
    scores = [0.95, 0.9, 0.85, 0.7, 0.55, 0.4, 0.4, 0.1]
    matched = [True, True, False, True, False, True, False, False]
    out = f1_confidence(torch.tensor(scores, dtype=torch.float64), torch.tensor(matched), 5)
    t, f1 = _brute_force(scores, matched, 5)
    # keeping the top 4 (3 right): P 3/4, R 3/5, F1 2/3; keeping down to 0.4: 4/7, 4/5 ->
    # 2/3 too, and the higher threshold wins the tie
    assert abs(f1 - 2 / 3) < 1e-12 and t == 0.7
    assert out["best_threshold"] == t and abs(out["best_f1"] - f1) < 1e-12
    # the grid curve agrees with the same counts at its own thresholds
    grid = torch.tensor(out["thresholds"])
    i = int((grid - 0.6).abs().argmin())  # t = 0.6 keeps the top 4
    assert abs(out["precision"][i] - 0.75) < 1e-12 and abs(out["recall"][i] - 0.6) < 1e-12
    assert abs(out["f1"][i] - 2 / 3) < 1e-12
    assert out["precision"][-1] == 1.0 and out["recall"][-1] == 0.0  # t = 1 keeps nothing


def test_random_sets_match_brute_force():
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        n = int(torch.randint(1, 40, (1,), generator=g))
        scores = (torch.rand(n, generator=g) * 20).round() / 20  # many ties
        matched = torch.rand(n, generator=g) < 0.5
        truth = int(matched.sum()) + int(torch.randint(0, 5, (1,), generator=g))
        if truth == 0:
            continue
        out = f1_confidence(scores, matched, truth)
        t, f1 = _brute_force(scores.tolist(), matched.tolist(), truth)
        assert abs(out["best_f1"] - f1) < 1e-9
        if f1 > 0:
            assert abs(out["best_threshold"] - t) < 1e-9


def test_accumulator_curve_matches_boxes_at_iou_half():
    # one image, two cats: a box on the first (IoU 1), one shifted to IoU 1/3 on the
    # second (a miss at 0.5), and one of the wrong class on the first
    truth = Target(
        boxes=torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10]]), labels=torch.tensor([0, 0])
    )
    pred = Prediction(
        boxes=torch.tensor([[0.0, 0, 10, 10], [25, 0, 35, 10], [0, 0, 10, 10]]),
        labels=torch.tensor([0, 0, 1]),
        scores=torch.tensor([0.9, 0.8, 0.6]),
    )
    acc = DetectionAccumulator(["cat", "dog"])
    acc.update([pred], [truth])
    out = acc.f1_confidence()
    # only the 0.9 box matches: keeping it alone gives P 1, R 1/2, F1 2/3
    assert abs(out["best_threshold"] - 0.9) < 1e-6  # the score as stored (float32)
    assert abs(out["best_f1"] - 2 / 3) < 1e-9
    assert [f.kind for f in acc.figures(["cat", "dog"])].count("f1_confidence") == 1


def test_per_class_curves_are_each_class_alone():
    # cats: one right at 0.9, one wrong at 0.3 (2 truths); dogs: a wrong 0.8, a right 0.4
    truth = Target(
        boxes=torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]),
        labels=torch.tensor([0, 0, 1]),
    )
    pred = Prediction(
        boxes=torch.tensor([[0.0, 0, 10, 10], [60, 0, 70, 10], [80, 0, 90, 10], [40, 0, 50, 10]]),
        labels=torch.tensor([0, 0, 1, 1]),
        scores=torch.tensor([0.9, 0.3, 0.8, 0.4]),
    )
    acc = DetectionAccumulator(["cat", "dog", "owl"])
    acc.update([pred], [truth])
    out = acc.f1_confidence()
    curves = {c["label"]: c for c in out["per_class"]}
    assert set(curves) == {"cat", "dog"}  # the owl has no ground truth
    # cat alone: keeping the 0.9 box gives P 1, R 1/2 -> F1 2/3
    assert abs(curves["cat"]["best_f1"] - 2 / 3) < 1e-9
    assert abs(curves["cat"]["best_threshold"] - 0.9) < 1e-6
    # dog alone: only down to 0.4 finds it: P 1/2, R 1 -> F1 2/3 at 0.4
    assert abs(curves["dog"]["best_f1"] - 2 / 3) < 1e-9
    assert abs(curves["dog"]["best_threshold"] - 0.4) < 1e-6
    # on the grid: at t = 0.5 the dog's curve keeps only the wrong box (F1 0)
    i = int((torch.tensor(out["thresholds"]) - 0.5).abs().argmin())
    assert curves["dog"]["f1"][i] == 0.0 and abs(curves["cat"]["f1"][i] - 2 / 3) < 1e-9
    # the pooled curve is still over all four boxes and three truths
    t, f1 = _brute_force([0.9, 0.3, 0.8, 0.4], [True, False, False, True], 3)
    assert abs(out["best_f1"] - f1) < 1e-9 and abs(out["best_threshold"] - t) < 1e-6

"""ClassificationAccumulator against scikit-learn and a plain numpy ECE."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    top_k_accuracy_score,
)

from recog.metrics.classification import ClassificationAccumulator
from recog.report.plots import draw_figures
from recog.types import Prediction, Target

C, N = 7, 500
NAMES = [f"class{i}" for i in range(C)]
TOL = 1e-6


def _data(seed: int = 0, n: int = N, c: int = C) -> tuple[torch.Tensor, torch.Tensor]:
    """Random probabilities whose arg-max never falls on the last two classes."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n,), generator=g)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * 2
    logits[torch.arange(n), labels] += 1.5  # better than chance
    if c > 2:
        logits[:, -2:] -= 20  # classes never predicted (but present in the truth)
    return logits.softmax(dim=1).float(), labels


def _ece(probs: np.ndarray, labels: np.ndarray, bins: int) -> float:
    conf = probs.max(axis=1)
    right = (probs.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(conf[inside].mean() - right[inside].mean())
    return total


def _filled(
    probs: torch.Tensor, labels: torch.Tensor, names: list[str] = NAMES, **kw
) -> ClassificationAccumulator:
    acc = ClassificationAccumulator(names, **kw)
    acc.update_tensors(probs, labels)
    return acc


def test_matches_sklearn():
    probs, labels = _data()
    m = _filled(probs, labels).compute()
    p, y = probs.double().numpy(), labels.numpy()
    pred = p.argmax(axis=1)
    assert set(pred) <= set(range(C - 2)) and set(y) == set(range(C))
    zd = {"zero_division": 0}
    assert m["num_samples"] == N
    assert m["top1"] == pytest.approx(accuracy_score(y, pred), abs=TOL)
    assert m["top5"] == pytest.approx(
        top_k_accuracy_score(y, p, k=5, labels=list(range(C))), abs=TOL
    )
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", **zd), abs=TOL)
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted", **zd), abs=TOL)
    assert m["macro_precision"] == pytest.approx(
        precision_score(y, pred, average="macro", **zd), abs=TOL
    )
    assert m["macro_recall"] == pytest.approx(recall_score(y, pred, average="macro", **zd), abs=TOL)
    every = {"labels": list(range(C)), "average": None, **zd}
    np.testing.assert_allclose(list(m["per_class"].values()), f1_score(y, pred, **every), atol=TOL)
    np.testing.assert_allclose(
        list(m["per_class_precision"].values()), precision_score(y, pred, **every), atol=TOL
    )
    np.testing.assert_allclose(
        list(m["per_class_recall"].values()), recall_score(y, pred, **every), atol=TOL
    )
    assert list(m["per_class"]) == NAMES
    assert m["per_class_support"] == {n: int((y == i).sum()) for i, n in enumerate(NAMES)}
    assert m["confusion_matrix"] == confusion_matrix(y, pred, labels=list(range(C))).tolist()
    # float32 in, as stored: scikit-learn then clips at float32 eps, like the accumulator
    assert m["nll"] == pytest.approx(log_loss(y, probs.numpy(), labels=list(range(C))), abs=TOL)
    assert m["ece"] == pytest.approx(_ece(p, y, 15), abs=TOL)
    assert m["per_class"]["class6"] == 0.0 and m["per_class_recall"]["class5"] == 0.0


def test_values_are_plain_json_fractions():
    m = _filled(*_data(seed=3)).compute()
    assert json.loads(json.dumps(m)) == m
    for key in (
        "top1",
        "top5",
        "macro_f1",
        "weighted_f1",
        "macro_precision",
        "macro_recall",
        "ece",
    ):
        assert type(m[key]) is float and 0.0 <= m[key] <= 1.0
    assert all(type(v) is int for v in m["per_class_support"].values())
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)


@pytest.mark.parametrize("bins", [5, 10])
def test_ece_bins(bins):
    probs, labels = _data(seed=1)
    m = _filled(probs, labels, ece_bins=bins).compute()
    assert m["ece"] == pytest.approx(_ece(probs.double().numpy(), labels.numpy(), bins), abs=TOL)


def test_merge_of_halves_equals_whole():
    probs, labels = _data(seed=2)
    a, b = _filled(probs[:200], labels[:200]), _filled(probs[200:], labels[200:])
    a.merge(b)
    assert a.compute() == _filled(probs, labels).compute()


def test_update_matches_update_tensors():
    probs, labels = _data(seed=4, n=60)
    slow = ClassificationAccumulator(NAMES)
    for start in range(0, 60, 16):
        chunk = range(start, min(start + 16, 60))
        slow.update(
            [Prediction(labels=probs[i].argmax(), scores=probs[i]) for i in chunk],
            [Target(labels=labels[i]) for i in chunk],
        )
    assert slow.compute() == _filled(probs, labels).compute()


def test_two_classes_have_no_top5():
    probs, labels = _data(seed=5, n=50, c=2)
    m = _filled(probs, labels, names=["cat", "dog"]).compute()
    assert "top5" not in m and m["num_samples"] == 50
    assert m["top1"] == pytest.approx(
        accuracy_score(labels.numpy(), probs.argmax(1).numpy()), abs=TOL
    )


def test_empty_accumulator(tmp_path):
    acc = ClassificationAccumulator(NAMES)
    acc.update([], [])
    acc.update_tensors(torch.zeros(0, C), torch.zeros(0, dtype=torch.int64))
    assert acc.compute() == {"num_samples": 0}
    assert draw_figures(acc.figures(NAMES), tmp_path) == []
    assert not any(tmp_path.iterdir())


def test_wrong_width_is_rejected():
    with pytest.raises(ValueError, match="probs must be"):
        ClassificationAccumulator(NAMES).update_tensors(
            torch.zeros(3, C + 1), torch.zeros(3, dtype=torch.int64)
        )


def test_plots_write_confusion_matrix(tmp_path):
    acc = _filled(*_data(seed=6, n=80))
    paths = draw_figures(acc.figures(NAMES), tmp_path)
    assert paths == [tmp_path / "confusion_matrix.png", tmp_path / "reliability.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in paths)


def _binary_ece(p: np.ndarray, y: np.ndarray, bins: int) -> float:
    """Plain numpy: equal-width bins of p (as torchmetrics: [lo, hi)), |mean p - mean y|."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            total += inside.mean() * abs(p[inside].mean() - y[inside].mean())
    return total


def test_per_class_ece_is_the_class_wise_calibration_error():
    probs, labels = _data(seed=8, n=400)
    m = _filled(probs, labels).compute()
    assert list(m["per_class_ece"]) == NAMES
    for c, name in enumerate(NAMES):
        expected = _binary_ece(probs[:, c].numpy(), (labels == c).numpy().astype(float), 15)
        assert m["per_class_ece"][name] == pytest.approx(expected, abs=1e-5)


def test_reliability_bins_add_up_to_the_ece():
    probs, labels = _data(seed=9, n=300)
    acc = _filled(probs, labels)
    bins = acc.reliability()
    assert len(bins["edges"]) == 16 and sum(bins["count"]) == 300
    gap = sum(
        n * abs(a - c)
        for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
        if n
    )
    assert gap / 300 == pytest.approx(acc.compute()["ece"], abs=1e-5)
    figure = [f for f in acc.figures(NAMES) if f.kind == "reliability"][0]
    assert figure.data["ece"] == pytest.approx(acc.compute()["ece"])

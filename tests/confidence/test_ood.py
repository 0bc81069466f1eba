"""Out-of-distribution scores, the threshold at a true-positive rate, and the rule's files."""

from __future__ import annotations

import json

import pytest
import torch
from sklearn.metrics import roc_auc_score

from recog.confidence.ood import (
    FEATURE_SCORES,
    IMAGENET_SCORES,
    SCORES,
    FeatureStats,
    OODRule,
    auroc_fpr95,
    score,
    threshold_at_tpr,
)
from recog.errors import RecogError


def _clusters(n: int, seed: int, shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of 3 classes around fixed centres (D = 8); `shift` moves all of them away."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(3, 8) * 6.0
    labels = torch.randint(0, 3, (n,), generator=g)
    return centres[labels] + torch.randn(n, 8, generator=g) + shift, labels


def test_threshold_keeps_the_asked_fraction():
    values = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    for tpr in (0.5, 0.9, 0.95, 0.99):
        t = threshold_at_tpr(values, tpr)
        kept = float((values >= t).double().mean())
        assert tpr <= kept < tpr + 0.002
    with pytest.raises(RecogError, match="between 0 and 1"):
        threshold_at_tpr(values, 1.0)


def test_auroc_and_fpr95_against_sklearn_and_a_score_that_ignores_the_input():
    g = torch.Generator().manual_seed(1)
    inside, outside = torch.randn(500, generator=g) + 2.0, torch.randn(500, generator=g)
    out = auroc_fpr95(inside, outside)
    y = [1] * 500 + [0] * 500
    assert out["auroc"] == pytest.approx(roc_auc_score(y, torch.cat([inside, outside]).numpy()))
    expected_fpr = float((outside >= torch.quantile(inside, 0.05)).double().mean())
    assert out["fpr95"] == pytest.approx(expected_fpr, abs=0.01)
    blind = auroc_fpr95(torch.rand(500, generator=g), torch.rand(500, generator=g))
    assert abs(blind["auroc"] - 0.5) < 0.05 and blind["fpr95"] > 0.85


def test_feature_scores_separate_shifted_features():
    train, labels = _clusters(600, seed=0)
    inside, _ = _clusters(200, seed=1)
    outside, _ = _clusters(200, seed=2, shift=4.0)
    stats = FeatureStats.fit(train, labels)
    logits = torch.zeros(200, 3)  # the logits say nothing here: only the features can tell
    for name in ("knn", "mahalanobis"):
        a, b = score(name, logits, inside, stats), score(name, logits, outside, stats)
        assert auroc_fpr95(a, b)["auroc"] > 0.97, name
    assert auroc_fpr95(score("msp", logits, inside, stats), score("msp", logits, outside, stats))[
        "auroc"
    ] == pytest.approx(0.5)


def test_logit_scores():
    logits = torch.tensor([[10.0, 0.0], [0.1, 0.0]])
    assert score("msp", logits, None, None).tolist() == pytest.approx(
        logits.softmax(1).amax(1).tolist()
    )
    assert score("energy", logits, None, None).tolist() == pytest.approx(
        torch.logsumexp(logits, 1).tolist()
    )
    with pytest.raises(RecogError, match="needs penultimate features"):
        score("knn", logits, None, None)


@pytest.mark.parametrize("name", SCORES)
def test_rule_round_trips_through_its_files(tmp_path, name):
    train, labels = _clusters(300, seed=0)
    val, _ = _clusters(100, seed=1)
    logits = torch.randn(100, 3, generator=torch.Generator().manual_seed(3))
    rule = OODRule.fit(name, logits, val, FeatureStats.fit(train, labels), tpr=0.9, data="syn",
                       features_from="efficientnet_lite0.imagenet")  # fmt: skip
    written = rule.save(tmp_path)
    assert (tmp_path / "ood_rule.json") in written
    assert (tmp_path / "ood_bank.safetensors").is_file() == (name in FEATURE_SCORES)
    back = OODRule.load(tmp_path)
    assert back is not None and back.score == name and back.threshold == rule.threshold
    # an imagenet_* rule names the record whose features it reads; the others none
    assert back.features == ("efficientnet_lite0.imagenet" if name in IMAGENET_SCORES else "")
    torch.testing.assert_close(back.scores(logits, val), rule.scores(logits, val))
    assert float((rule.scores(logits, val) >= rule.threshold).double().mean()) >= 0.9


@pytest.mark.parametrize(
    "record, message",
    [
        ({"score": "vibes", "threshold": 0, "tpr": 0.95}, "score"),
        ({"score": "msp", "threshold": "high", "tpr": 0.95}, "threshold"),
        ({"score": "msp", "threshold": 0.5, "tpr": 1.5}, "tpr"),
        ({"score": "knn", "threshold": 0.5, "tpr": 0.95, "k": 1}, "ood_bank.safetensors"),
        ({"score": "imagenet_knn", "threshold": 0.5, "tpr": 0.95, "k": 1}, "ood_bank.safetensors"),
    ],
)
def test_a_bad_rule_file_is_one_line_naming_it(tmp_path, record, message):
    (tmp_path / "ood_rule.json").write_text(json.dumps(record))
    with pytest.raises(RecogError, match=message) as info:
        OODRule.load(tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_a_tiny_digits_cnn_tells_noise_from_digits(digits_run, noise_images):
    """Far OOD: uniform noise against the run's own validation digits."""
    import recog

    rec = recog.load(digits_run, device="cpu")
    table = rec.ood_report(str(noise_images), save_dir=digits_run / "ood-check")
    assert set(table) == set(SCORES)
    assert max(row["auroc"] for row in table.values()) >= 0.95, table
    assert table["knn"]["auroc"] >= 0.95, table
    saved = json.loads((digits_run / "ood-check" / "ood.json").read_text())
    assert set(saved) == set(SCORES)
    for name, row in saved.items():
        assert set(row) == {"auroc", "fpr95"}
        assert row["auroc"] == pytest.approx(table[name]["auroc"])


def test_mahalanobis_is_the_distance_to_the_nearest_class_mean():
    train, labels = _clusters(400, seed=4)
    stats = FeatureStats.fit(train, labels, scores=("mahalanobis",))
    x, _ = _clusters(5, seed=5)
    diff = x[:, None, :].double() - stats.means[None].double()
    expected = -torch.einsum("bcd,de,bce->bc", diff, stats.precision.double(), diff).amin(1)
    torch.testing.assert_close(
        score("mahalanobis", torch.zeros(5, 3), x, stats).double(), expected, rtol=1e-5, atol=1e-4
    )

"""Faithfulness scores: our deletion curve against pytorch-grad-cam's metric, and checks that fail when they should."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from recog.explain import faithfulness as faith
from recog.explain.explainer import Explainer
from recog.explain.methods import MapInputs


class _Tiny(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(self.conv(x).relu().mean((2, 3)))


def test_deletion_curve_matches_pytorch_grad_cams_most_relevant_first():
    """Each point of our deletion curve is pytorch-grad-cam's RemoveMostRelevantFirst
    at the same fraction, with a black imputer, on the same map and model."""
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        PerturbationConfidenceMetric,
        RemoveMostRelevantFirst,
    )
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    torch.manual_seed(0)
    model = _Tiny().eval()
    image = torch.rand(1, 3, 25, 40)  # 1,000 pixels
    saliency = np.random.default_rng(0).random((25, 40)).astype(np.float32)
    label, steps = 2, 10

    def score(images):
        with torch.no_grad():
            return model(images).softmax(1)[:, label]

    ours = faith.curve(score, image, saliency, steps=steps, mode="deletion")
    target = [ClassifierOutputSoftmaxTarget(label)]
    for k in range(1, steps):
        removed = k / steps
        metric = PerturbationConfidenceMetric(
            RemoveMostRelevantFirst(100 * (1 - removed), lambda x, mask: x * mask)
        )
        theirs = metric(image, saliency[None], target, model, return_diff=False)
        assert ours[k] == pytest.approx(float(theirs[0]), abs=1e-5), k
    assert ours[0] == pytest.approx(float(score(image)[0]), abs=1e-6)
    assert ours[-1] == pytest.approx(float(score(torch.zeros_like(image))[0]), abs=1e-6)


def test_auc_is_the_trapezoid_area_over_unit_x():
    assert faith.auc(np.array([1.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert faith.auc(np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert faith.auc(np.array([0.0, 1.0, 0.0, 0.0, 0.0])) == pytest.approx(0.25)


def test_insertion_starts_from_a_blur_and_ends_at_the_image():
    image = torch.rand(1, 3, 32, 32)
    frames = faith.perturbed(image, np.random.rand(32, 32), steps=4, mode="insertion")
    assert frames.shape == (5, 3, 32, 32)
    assert torch.equal(frames[-1], image[0])
    assert frames[0].std() < image.std()  # the blur is smoother than the image


def test_randomization_levels_go_from_the_output_back_and_copies_leave_the_model():
    model = _Tiny()
    levels = faith.randomization_levels(model, 2)
    assert levels == [["fc"], ["fc", "conv"]]
    before = model.fc.weight.clone()
    copy = faith.reinitialized(model, ["fc"])
    assert torch.equal(model.fc.weight, before)
    assert not torch.equal(copy.fc.weight, before)
    assert torch.equal(copy.conv.weight, model.conv.weight)


def test_rank_correlation():
    a = np.arange(16.0).reshape(4, 4)
    assert faith.rank_correlation(a, a * 3 + 1) == pytest.approx(1.0)
    assert faith.rank_correlation(a, -a) == pytest.approx(
        1.0
    )  # |rho|: a flipped map is the same order
    assert faith.rank_correlation(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert faith.rank_correlation(a, np.zeros((4, 4))) == 0.0


# ------------------------------------------------------------- a trained model
def _edges(x: MapInputs) -> np.ndarray:
    """A map of the image's own edges: it never asks the model."""
    g = x.image[0].mean(0)
    return (g.diff(dim=0, prepend=g[:1]).abs() + g.diff(dim=1, prepend=g[:, :1]).abs()).numpy()


def _inverted_gradcam(x: MapInputs) -> np.ndarray:
    from recog.explain.methods import saliency

    return 1.0 - saliency("gradcam", x)


def test_gradcam_passes_the_checks_and_maps_that_ignore_or_invert_the_model_fail(digits):
    explainer = Explainer(
        digits.task,
        digits.model,
        head=digits.spec.head,
        extra_methods={"edges": _edges, "inverted": _inverted_gradcam},
    )
    val = digits.task.data.splits(digits.config).val
    images = [val[i].image for i in range(0, 120, 10)]
    table, examples = explainer.score(
        images, methods=["gradcam", "edges", "inverted"], steps=10, randomization_images=4
    )
    assert digits.evaluate()["top1"] > 0.85
    print(json.dumps(table, indent=1))
    assert "random" in table and examples
    g, edges, inv = table["gradcam"], table["edges"], table["inverted"]
    assert g["deletion_beats_random"] and g["insertion_beats_random"], table
    assert g["changes_with_weights"], table
    assert not edges["changes_with_weights"], table  # ignores the weights: rho stays 1
    assert edges["randomization_spearman"] == pytest.approx(1.0)
    assert not inv["deletion_beats_random"], table  # the map's worst pixels first
    assert not table["random"]["changes_with_weights"]
    assert list(table)[0] != "inverted"  # ranked by insertion minus deletion


def test_drise_finds_the_region_the_score_reads_and_nothing_where_it_reads_none():
    from recog.explain.methods import MapInputs, saliency

    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def top_left(x):  # the score sees only the top-left quarter
        return x[:, :, :16, :16].mean(dim=(1, 2, 3))

    inputs = MapInputs(image=image, evidence=None, score=top_left, drise_masks=512)  # type: ignore[arg-type]
    found = saliency("drise", inputs)
    assert found[:16, :16].mean() > 2 * found[16:, 16:].mean()
    # a score that ignores the image: the masks' own coverage pattern must not show as a map
    # (the plain score-weighted sum draws it; centring on the mean score leaves nothing)
    flat = MapInputs(image=image, evidence=None, score=lambda x: torch.full((len(x),), 0.7),  # type: ignore[arg-type]
                     drise_masks=512)  # fmt: skip
    assert not saliency("drise", flat).any()

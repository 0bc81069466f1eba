"""Maps for every task: each method on a classifier, per-box maps on detectors, per-class maps on segmenters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recog.explain.explainer import Explainer
from recog.explain.facet import EXPLAIN
from recog.explain.methods import METHODS
from recog.models.factory import create_model, get_spec
from recog.tasks import task_class
from recog.types import ExplainTarget


def test_every_method_maps_a_digit(digits):
    val = digits.task.data.splits(digits.config).val
    image = val[0].image
    explainer = Explainer(digits.task, digits.model, head=digits.spec.head)
    maps = explainer.explain(image, "d0", methods=list(METHODS), steps=5)
    assert [e.method for e in maps] == list(METHODS)
    for e in maps:
        assert e.saliency.shape == tuple(image.shape[-2:]), e.method
        assert e.saliency.dtype == np.float32
        assert 0.0 <= e.saliency.min() and e.saliency.max() <= 1.0, e.method
        assert e.saliency.std() > 0, f"{e.method} gave a constant map"
        assert {"deletion_auc", "insertion_auc", "random_deletion_auc"} <= set(e.scores)
    gradcam, random = maps[0].saliency, maps[-1].saliency
    assert not np.allclose(gradcam, random)


def test_the_cam_layer_is_spatial_and_outside_the_head(digits):
    from recog.explain.target import TargetModel, cam_layer

    target = ExplainTarget(name="3", label=3)
    tm = TargetModel(digits.task, digits.model, target, gradient=True)
    x = torch.rand(1, 3, digits.img_size, digits.img_size)
    _, reshape, name = cam_layer(tm, x, digits.spec.head)
    assert reshape is None and not name.startswith(digits.spec.head)


def test_a_vit_is_explained_through_its_tokens():
    from recog.explain.target import TargetModel, cam_layer

    spec = get_spec("vit_tiny")
    model = create_model("vit_tiny", num_classes=3, img_size=32).eval()
    task = task_class(spec)(["a", "b", "c"], spec.mean, spec.std, img_size=32)
    tm = TargetModel(task, model, ExplainTarget(name="a", label=0), gradient=True)
    _, reshape, name = cam_layer(tm, torch.rand(1, 3, 32, 32), spec.head)
    assert reshape is not None, name  # tokens reshaped to a grid
    assert not name.startswith("head")
    m = Explainer(task, model, head=spec.head).saliency(
        torch.rand(1, 3, 32, 32), ExplainTarget(name="a", label=0), "gradcam"
    )
    assert m.shape == (32, 32)


def _detector(name: str, size: int):
    spec = get_spec(name)
    model = create_model(name, num_classes=2, img_size=size).eval()
    task = task_class(spec)(["a", "b"], spec.mean, spec.std, img_size=size)
    return spec, model, task


@pytest.mark.parametrize(
    "name,size", [("yolo_n", 64), pytest.param("ssdlite", 64, marks=pytest.mark.slow)]
)
def test_a_box_score_reaches_the_input_and_gives_maps(name, size):
    """Grad-CAM and D-RISE on one box of an untrained detector: the box's score is
    differentiable with respect to the image, and both maps come out."""
    spec, model, task = _detector(name, size)
    x = torch.rand(1, 3, size, size, requires_grad=True)
    box = ExplainTarget(name="a #1", label=0, box=torch.tensor([8.0, 8.0, 40.0, 40.0]))
    score = EXPLAIN.of(task).score(task, model, x, box, gradient=True)
    assert score.shape == (1,) and float(score.detach()) > 0
    score.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    explainer = Explainer(task, model, head=spec.head)
    for method in ("gradcam", "drise"):
        m = explainer.saliency(x.detach(), box, method)
        assert m.shape == (size, size) and np.isfinite(m).all(), method


def test_a_segmenter_is_explained_per_class_region():
    spec = get_spec("unet")
    model = create_model("unet", num_classes=3, img_size=64).eval()
    task = task_class(spec)(["background", "a", "b"], spec.mean, spec.std, img_size=64)
    image = (torch.rand(3, 64, 64) * 255).to(torch.uint8)
    explainer = Explainer(task, model, head=spec.head)
    targets = explainer.targets(image)
    assert targets and all(t.region is not None and t.region.shape == (64, 64) for t in targets)
    maps = explainer.explain(image, "x", methods=["gradcam", "occlusion"], steps=4)
    assert len(maps) == 2 * len(targets)
    assert all(e.saliency.shape == (64, 64) for e in maps)

"""Penultimate features of every registered classifier, read at the input of the head its spec names."""

from __future__ import annotations

import pytest
import torch

from recog.confidence.features import FeatureTap, head_module
from recog.models.factory import create_model, get_spec, list_models

#: built in the default suite; the rest (VGG, ResNet-50, ...) with the slow tests
FAST = {"cnn", "resnet18", "vit_tiny", "mobilenet_v3_small", "se_resnet18"}


@pytest.mark.parametrize(
    "name",
    [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in list_models("classify")],
)
def test_the_head_input_is_one_feature_vector_per_image(name):
    spec = get_spec(name)
    size = max(spec.min_img_size, 64)
    model = create_model(name, num_classes=3, img_size=size).eval()
    tap = FeatureTap(head_module(model, spec))
    with torch.no_grad(), tap.attached():
        logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 3)
    assert tap.features is not None and tap.features.ndim == 2 and tap.features.shape[0] == 2
    head = head_module(model, spec)
    linear = (
        head
        if isinstance(head, torch.nn.Linear)
        else next(m for m in head.modules() if isinstance(m, torch.nn.Linear))
    )
    assert tap.features.shape[1] == linear.in_features


def test_a_timm_models_head_is_its_classifier():
    spec = get_spec("timm:resnet10t")
    model = create_model("timm:resnet10t", num_classes=4, img_size=64).eval()
    assert head_module(model, spec) is model.get_classifier()

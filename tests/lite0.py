"""Test helpers for the models built on EfficientNet-Lite0's ImageNet file: timm's own classifier
loaded from the same file, and its stage outputs, the reference a backbone or encoder must equal."""

from __future__ import annotations

import timm
import torch

from recog.models.pretrained import TABLE, load_into

LITE0 = TABLE["efficientnet_lite0.imagenet"]


def lite0_classifier() -> torch.nn.Module:
    """timm's whole Lite0 classifier with ImageNet's 1,000 classes, from the same file."""
    classifier = timm.create_model(LITE0.timm_arch, pretrained=False)
    report = load_into(classifier, LITE0)
    assert report.fresh == () and report.unused == ()
    return classifier.eval()


def stage_outputs(classifier: torch.nn.Module, stages: list[str], x: torch.Tensor) -> list:
    """The outputs of `stages` (module names) when `classifier` runs on `x`."""
    seen: list[torch.Tensor] = []
    hooks = [
        classifier.get_submodule(s).register_forward_hook(lambda _m, _i, out: seen.append(out))
        for s in stages
    ]
    try:
        with torch.no_grad():
            classifier(x)
    finally:
        for hook in hooks:
            hook.remove()
    return seen

"""Logits and penultimate features of a classifier, in one forward pass.

The penultimate features are what goes *into* the classifier head, read by a
forward pre-hook on the head module the registry names (`ModelSpec.head`:
`fc` for ResNets, `classifier.6` for VGG/AlexNet, `head` for `cnn` and ViT,
`classifier.3` for MobileNetV3), or timm's `get_classifier()` when a spec
names none.  So every registered classifier answers the same way without a
per-model branch: (B, D) after flattening (the `cnn` head's input is the
pooled (B, D, 1, 1) map).

`collect` runs the task's `logits` over a labelled dataset (the task's own
collation) or over image files (read and prepared as `recog predict` does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from recog.confidence.facet import CONFIDENCE
from recog.confidence.ood import IMAGENET_SCORES
from recog.errors import RecogError

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from recog.confidence.imagenet import ImageNetFeatures
    from recog.models.registry import ModelSpec
    from recog.tasks.base import Task


def head_module(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """The module whose input is the penultimate feature vector."""
    for name in spec.head:
        try:
            return model.get_submodule(name)
        except AttributeError:
            continue
    getter = getattr(model, "get_classifier", None)
    if callable(getter):
        head = getter()
        if isinstance(head, nn.Module) and not isinstance(head, nn.Identity):
            return head
    raise RecogError(f"model {spec.name}: no classifier head to read penultimate features from")


class FeatureTap:
    """Keeps the (B, D) input of `head` from the last forward pass (`features`)."""

    def __init__(self, head: nn.Module) -> None:
        self.head = head
        self.features: Tensor | None = None

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self.features = inputs[0].detach().flatten(1).float()

    @contextlib.contextmanager
    def attached(self) -> Iterator[FeatureTap]:
        handle = self.head.register_forward_pre_hook(self._hook)
        try:
            yield self
        finally:
            handle.remove()


@dataclass
class Outputs:
    """One pass over some images: logits (N, C), features (N, D), labels (N,) or None, and
    the untouched ImageNet features (N, D') of the same images where they were asked for."""

    logits: Tensor
    features: Tensor
    labels: Tensor | None = None
    imagenet: Tensor | None = None

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def features_for(self, score: str) -> Tensor | None:
        """The features `score` reads: ImageNet's for an `imagenet_*` score, else the run's."""
        return self.imagenet if score in IMAGENET_SCORES else self.features


def logits_and_features(
    task: Task, model: nn.Module, head: nn.Module, images: Tensor
) -> tuple[Tensor, Tensor]:
    """(B, C) logits and (B, D) penultimate features of a uint8 (B, 3, H, W) batch (on the CPU)."""
    tap = FeatureTap(head)
    with tap.attached():
        logits = CONFIDENCE.of(task).logits(task, model, images)
    if tap.features is None or tap.features.shape[0] != logits.shape[0]:
        raise RecogError("the model's head was not reached by the forward pass")
    return logits.float().cpu(), tap.features.cpu()


def require_class_logits(task: Task) -> None:
    """A RecogError unless the task's model answers class logits (a classifier)."""
    CONFIDENCE.of(task)  # the facet's own sentence for any other task


@torch.no_grad()
def collect_dataset(
    task: Task,
    model: nn.Module,
    spec: ModelSpec,
    dataset: Dataset,
    device: torch.device,
    *,
    batch_size: int = 64,
    imagenet: ImageNetFeatures | None = None,
) -> Outputs:
    """Logits, features and labels over a labelled dataset (the task's collation); with
    `imagenet`, also its features of the same prepared images."""
    require_class_logits(task)
    model.eval()
    head = head_module(model, spec)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=task.collate)
    parts: list[tuple[Tensor, Tensor, Tensor]] = []
    extra: list[Tensor] = []
    for batch in loader:
        logits, feats = logits_and_features(task, model, head, batch.images.to(device))
        parts.append((logits, feats, batch.targets.reshape(-1).cpu()))
        if imagenet is not None:
            extra.append(imagenet(batch.images))
    if not parts:
        raise RecogError("no images to measure on")
    logits, feats, labels = (torch.cat([p[i] for p in parts]) for i in range(3))
    return Outputs(logits, feats, labels, torch.cat(extra) if extra else None)


@torch.no_grad()
def collect_files(
    task: Task,
    model: nn.Module,
    spec: ModelSpec,
    files: Sequence[Path],
    device: torch.device,
    *,
    batch_size: int = 64,
    imagenet: ImageNetFeatures | None = None,
) -> Outputs:
    """Logits and features of image files, read and prepared as `recog predict` reads them
    (with `imagenet`, also its features of the same prepared images)."""
    from recog.data import read_image

    require_class_logits(task)
    if not files:
        raise RecogError("no image files to measure on")
    model.eval()
    head = head_module(model, spec)
    logits_parts, feature_parts, extra = [], [], []
    for start in range(0, len(files), batch_size):
        prepared = [task.prepare(read_image(p))[0] for p in files[start : start + batch_size]]
        images = torch.stack(prepared)
        logits, feats = logits_and_features(task, model, head, images.to(device))
        logits_parts.append(logits)
        feature_parts.append(feats)
        if imagenet is not None:
            extra.append(imagenet(images))
    return Outputs(
        torch.cat(logits_parts), torch.cat(feature_parts), None,
        torch.cat(extra) if extra else None,
    )  # fmt: skip

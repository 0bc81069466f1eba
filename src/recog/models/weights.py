"""Local pretrained weights: read safely, match to a model, replace the head.

`--weights` takes a path (safetensors, or a torch/timm state dict read with
`weights_only=True`) or `torchvision`, `timm`, `smp`: the file the library
would have downloaded for the model or its backbone, if it is in its local
cache (records of `recog.models.cached`).  Nothing is ever downloaded.  A load
is strict (`load_record`): classifier-head tensors whose shape differs (a new
set of classes) are left at their fresh initialisation; any other mismatch is
an error naming the first mismatching layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from recog.errors import RecogError
from recog.models import cached, pretrained
from recog.models.pretrained import LoadReport, PretrainedWeights, UserFile
from recog.models.registry import ModelSpec
from recog.models.state_file import read_state_dict


def _is_head(key: str, head: tuple[str, ...]) -> bool:
    return any(key == h or key.startswith(h + ".") for h in head)


def _place(
    state: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor], spec: ModelSpec, path: Path
) -> tuple[str, dict[str, torch.Tensor]]:
    """Where the file's tensors sit in the model: its own names (""), a wrapped library model
    (`model.`: torchvision's detector), the backbone (`spec.encoder`), or smp's
    timm-universal encoder's timm network (`<encoder>.model`); file names may carry one
    extra leading part (`features.` of a MobileNet).  The placing that finds most wins."""
    prefixes = ["", "model."]
    if spec.encoder:
        prefixes += [spec.encoder + ".", spec.encoder + ".model."]
    stripped = {k.split(".", 1)[1]: v for k, v in state.items() if "." in k}
    best, count = ("", state), 0
    for candidate in (state, stripped):
        for prefix in prefixes:
            found = sum(prefix + k in own for k in candidate)
            if found > count:
                best, count = (prefix, candidate), found
    if not count:
        region = [k for k in own if k.startswith(spec.encoder + ".")] if spec.encoder else own
        whose = f"{spec.name}'s encoder" if spec.encoder else spec.name
        raise RecogError(
            f"{path}: matches 0 of the {len(region)} tensors of {whose} "
            "(is this the right architecture?)"
        )
    return best


def load_record(model: nn.Module, spec: ModelSpec, record: PretrainedWeights) -> LoadReport:
    """Load a file in the model's own names (a library cache's, a user's) into `model`,
    strictly: the whole model, where every tensor but the head's must find its place and
    every file tensor its layer (but the record's `unused_ok`); or the backbone alone, where
    every backbone tensor must find its place and the file's others (its classifier) stay
    unused.  The head of another class count, and all outside the backbone, are left fresh."""
    path = record.path()
    own = model.state_dict()
    prefix, state = _place(read_state_dict(path), own, spec, path)
    region = {k: v for k, v in own.items() if k.startswith(prefix)}
    whole = len(region) == len(own)
    if not whole:
        found = sum(k[len(prefix) :] in state for k in region)
        if found < len(region):
            raise RecogError(
                f"{path}: matches {found} of the {len(region)} tensors of {spec.name}'s encoder "
                "(is this the right architecture?)"
            )
    fresh: list[str] = []
    for key, tensor in region.items():
        mine = state.get(key[len(prefix) :])
        if mine is not None and mine.shape == tensor.shape:
            continue
        if _is_head(key, spec.head):
            fresh.append(key)
        elif mine is None:
            raise RecogError(
                f"{path}: no tensor for layer {key!r} of {spec.name} (is this the right architecture?)"
            )
        else:
            raise RecogError(
                f"{path}: layer {key!r} has shape {tuple(mine.shape)} in the file "
                f"but {tuple(tensor.shape)} in {spec.name}"
            )
    unused = tuple(k for k in state if prefix + k not in region)
    stray = [k for k in unused if not k.startswith(record.unused_ok)]
    if whole and stray:
        raise RecogError(
            f"{path}: layer {stray[0]!r} is not in {spec.name} (is this the right architecture?)"
        )
    loaded = {prefix + k: v for k, v in state.items() if prefix + k in region}
    loaded = {k: v for k, v in loaded.items() if k not in fresh}
    model.load_state_dict(loaded, strict=False)
    left = tuple(k for k in own if k not in loaded)
    return LoadReport(len(loaded), left, unused)


def load_pretrained(
    model: nn.Module,
    spec: ModelSpec,
    source: str,
    *,
    model_args: Mapping[str, Any] | None = None,
) -> list[str]:
    """Load `source` (a `--weights` value: a file's path, or `torchvision`, `timm`, `smp`)
    into `model` in the model's own names; returns the model keys left fresh.

    `model_args` are the builder's (`--model-args`): which encoder a U-Net has."""
    record = for_weights(spec, source, model_args)
    if record is None:
        return list(model.state_dict())
    if record.mapped:  # a file for the model's pip record: read in the model's own names here
        record = dataclasses.replace(record, mapped=False)
    return list(load_record(model, spec, record).fresh)


def for_weights(
    spec: ModelSpec, weights: str, model_args: Mapping[str, Any] | None = None
) -> PretrainedWeights | None:
    """The one lookup of `--weights` (resolved): the record a run starts from, None for
    `none`.  `imagenet`: the model's pip record; `torchvision`, `timm`, `smp`: the library's
    file in its local cache (`recog.models.cached`); anything else, a file's path: read in the
    layout of the model's pip record where it has one, else in the model's own."""
    if weights == "none":
        return None
    if weights == pretrained.IMAGENET:
        if not spec.pretrained:
            raise RecogError(
                f"--weights imagenet: model {spec.name} has no ImageNet weights in recog's table "
                "(`recog weights` lists them; or a file's path, or --weights none)"
            )
        return pretrained.get(spec.pretrained)
    if weights in cached.LIBRARIES:
        return cached.library_record(spec, weights, model_args or {})
    path = Path(weights)
    if spec.pretrained:
        return dataclasses.replace(
            pretrained.get(spec.pretrained), name=path.name, locator=UserFile(path), sha256=""
        )
    return PretrainedWeights(name=path.name, arch=spec.name, locator=UserFile(path),
                             mean=spec.mean, std=spec.std)  # fmt: skip


def load_start(
    model: nn.Module, spec: ModelSpec, weights: str, *, model_args: Mapping[str, Any]
) -> str:
    """Load the run's starting weights (`--weights`, resolved) into `model`, strictly; returns
    the line the start block prints: which file, from where, what was loaded and left fresh."""
    record = for_weights(spec, weights, model_args)
    if record is None:
        raise RecogError("--weights none: there is nothing to load")
    if record.mapped:
        report = pretrained.load_into(model, record, prefix=spec.pretrained_at, head=spec.head)
    else:
        report = load_record(model, spec, record)
    return f"{record.name} from {record.source()}: {report.summary()}"


def freeze_backbone(model: nn.Module, spec: ModelSpec) -> int:
    """Linear probing: only the head trains; backbone batch-norm statistics stay fixed.

    Returns the number of trainable parameters left.
    """
    if not spec.head:
        raise RecogError(f"--freeze-backbone: model {spec.name} has no known classifier head")
    for name, param in model.named_parameters():
        param.requires_grad = _is_head(name, spec.head)
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not _is_head(name, spec.head):
            module.momentum = 0.0  # running statistics no longer move
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

"""Local pretrained weights: read safely, match to a model, replace the head.

`--weights` takes a path (safetensors, or a torch/timm state dict read with
`weights_only=True`) or `torchvision`, meaning the file torchvision would
have downloaded for this architecture, if it is already in the local torch
hub cache; `timm` and `smp` name the file timm or segmentation_models_pytorch
would have downloaded for the model or its encoder, if it is in the local
Hugging Face cache (`recog.models.hub`).  Nothing is ever downloaded.  Classifier-head tensors whose shape
differs (a new set of classes) are left at their fresh initialisation; any
other mismatch is an error naming the first mismatching layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from recog.errors import RecogError
from recog.io import load_weights
from recog.models.hub import HUB_SOURCES
from recog.models.registry import ModelSpec

_WRAPPER_KEYS = ("state_dict", "model", "model_state", "module", "ema")
_PREFIXES = ("module.", "model.", "_orig_mod.")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or a (possibly wrapped) torch state dict."""
    path = Path(path)
    if not path.is_file():
        raise RecogError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        state = load_weights(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - anything unreadable is a bad file
            raise RecogError(
                f"{path}: not a safetensors file or a torch state dict ({exc.__class__.__name__})"
            ) from exc
        for key in _WRAPPER_KEYS:
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RecogError(f"{path}: holds no state dict of tensors")
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def cached_torchvision_weights(model_name: str) -> Path:
    """The torch hub cache file of torchvision's default weights for `model_name`."""
    import torchvision.models as tvm

    try:
        weights = tvm.get_model_weights(model_name).DEFAULT
    except (ValueError, KeyError) as exc:
        raise RecogError(
            f"--weights torchvision: torchvision has no weights for {model_name}"
        ) from exc
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.is_file():
        raise RecogError(
            f"--weights torchvision: {path} is not in the local torch cache and recog never downloads; "
            "copy the file there or pass its path"
        )
    return path


def _is_head(key: str, head: tuple[str, ...]) -> bool:
    return any(key == h or key.startswith(h + ".") for h in head)


def _source_file(
    spec: ModelSpec, source: str, tv_name: str | None, model_args: Mapping[str, Any]
) -> Path:
    if source == "torchvision":
        return cached_torchvision_weights(tv_name or spec.torchvision_name or spec.name)
    if source in HUB_SOURCES:
        if spec.hub_weights is None:
            raise RecogError(
                f"--weights {source}: {spec.name} is not built on {source}'s weights "
                "(--weights torchvision, or a file's path)"
            )
        return spec.hub_weights(source, model_args)
    return Path(source)


def load_pretrained(
    model: nn.Module,
    spec: ModelSpec,
    source: str,
    *,
    tv_name: str | None = None,
    model_args: Mapping[str, Any] | None = None,
) -> list[str]:
    """Load `source` into `model`; returns the head keys left freshly initialised.

    `model_args` are the builder's (`--model-args`): which encoder a U-Net has."""
    path = _source_file(spec, source, tv_name, model_args or {})
    state = read_state_dict(path)
    own = model.state_dict()
    if not any(k in own for k in state):
        # a wrapped model's own checkpoint: torchvision's detector inside our `model.`
        wrapped = {f"model.{k}": v for k, v in state.items()}
        if any(k in own for k in wrapped):
            state = wrapped
    if spec.encoder and not any(k in own for k in state):
        return load_encoder(model, spec, state, path)
    fresh: list[str] = []
    for key, tensor in own.items():
        if key not in state:
            if _is_head(key, spec.head):
                fresh.append(key)
                continue
            raise RecogError(
                f"{path}: no tensor for layer {key!r} of {spec.name} (is this the right architecture?)"
            )
        if state[key].shape != tensor.shape:
            if _is_head(key, spec.head):
                fresh.append(key)
                continue
            raise RecogError(
                f"{path}: layer {key!r} has shape {tuple(state[key].shape)} in the file "
                f"but {tuple(tensor.shape)} in {spec.name}"
            )
    extra = [k for k in state if k not in own]
    if extra:
        raise RecogError(
            f"{path}: layer {extra[0]!r} is not in {spec.name} (is this the right architecture?)"
        )
    model.load_state_dict({k: v for k, v in state.items() if k not in fresh}, strict=False)
    return fresh


def load_encoder(
    model: nn.Module, spec: ModelSpec, state: dict[str, torch.Tensor], path: Path
) -> list[str]:
    """Backbone-only weights (e.g. an ImageNet ResNet for a U-Net encoder) into `spec.encoder`.

    File keys may carry one extra leading part (`features.` of a MobileNet); keys the
    encoder lacks (the classifier `fc.`) are skipped.  Returns the model keys left fresh.
    """
    prefix = spec.encoder + "."
    own = {k[len(prefix) :]: v for k, v in model.state_dict().items() if k.startswith(prefix)}

    def matches(candidate: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in candidate.items() if k in own}

    found = matches(state)
    stripped = {k.split(".", 1)[1]: v for k, v in state.items() if "." in k}
    if len(matches(stripped)) > len(found):
        found = matches(stripped)
    if len(found) < len(own) / 2:
        raise RecogError(
            f"{path}: matches {len(found)} of the {len(own)} tensors of {spec.name}'s encoder "
            "(is this the right architecture?)"
        )
    for key, tensor in found.items():
        if tensor.shape != own[key].shape:
            raise RecogError(
                f"{path}: encoder layer {key!r} has shape {tuple(tensor.shape)} in the file "
                f"but {tuple(own[key].shape)} in {spec.name}"
            )
    model.load_state_dict({prefix + k: v for k, v in found.items()}, strict=False)
    return [
        k for k in model.state_dict() if not (k.startswith(prefix) and k[len(prefix) :] in found)
    ]


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

"""The model registry: the one door from a name a user types to a built model.

`@register_model(name, task=..., ...)` records a keyword-only builder with
its task, default input size and the name of its classifier head (so local
pretrained weights can be loaded with the head replaced).  `create_model`
builds by name; `timm:<name>` reaches any timm model.  Unknown names fail
with the closest registered names.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from recog.errors import RecogError
from recog.types import TaskName

TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a model family member."""

    name: str
    task: TaskName
    builder: Callable[..., nn.Module]
    default_img_size: int = 224
    min_img_size: int = 32
    #: dotted prefixes of the parameters that form the classifier head
    head: tuple[str, ...] = ()
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    description: str = ""
    #: training settings this model trains best with, applied where the user set none (e.g. lr)
    train_defaults: dict[str, Any] = field(default_factory=dict)
    #: dotted prefix of the backbone, so `--weights` may hold the backbone's weights alone
    encoder: str = ""
    #: a segmentation model that separates instances (Mask R-CNN) rather than classes
    instance: bool = False


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    task: TaskName,
    default_img_size: int = 224,
    min_img_size: int = 32,
    head: tuple[str, ...] = (),
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
    std: tuple[float, float, float] = (0.229, 0.224, 0.225),
    description: str = "",
    train_defaults: dict[str, Any] | None = None,
    encoder: str = "",
    instance: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder `fn(*, num_classes, img_size, **kwargs)` under `name`."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(
            name=name,
            task=task,
            builder=fn,
            default_img_size=default_img_size,
            min_img_size=min_img_size,
            head=head,
            mean=mean,
            std=std,
            train_defaults=dict(train_defaults or {}),
            encoder=encoder,
            instance=instance,
            description=description or (fn.__doc__ or "").strip().splitlines()[0],
        )
        return fn

    return wrap


def _ensure_builtin() -> None:
    # Importing the family modules runs their @register_model decorators.
    from recog.models import classify, cnn, detect, segment, yolo  # noqa: F401


def list_models(task: TaskName | str | None = None) -> list[str]:
    _ensure_builtin()
    return sorted(n for n, s in _REGISTRY.items() if task is None or s.task == task)


def get_spec(name: str) -> ModelSpec:
    """The spec for `name`; `timm:<model>` gives a spec built on the fly."""
    _ensure_builtin()
    if name.startswith(TIMM_PREFIX):
        from recog.models.classify import timm_spec

        return timm_spec(name[len(TIMM_PREFIX) :])
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise RecogError(
            f"unknown model {name!r}{hint} (see `recog models`; any timm model as timm:<name>)"
        )
    return _REGISTRY[name]


def create_model(
    name: str, *, num_classes: int, img_size: int | None = None, **kwargs: Any
) -> nn.Module:
    spec = get_spec(name)
    size = img_size or spec.default_img_size
    if size < spec.min_img_size:
        raise RecogError(
            f"model {name} needs images of at least {spec.min_img_size} px, not {size}"
        )
    try:
        return spec.builder(num_classes=num_classes, img_size=size, **kwargs)
    except TypeError as exc:
        raise RecogError(f"model {name}: bad model argument ({exc})") from exc

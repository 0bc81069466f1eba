"""The model registry: a record of names and their specs, and nothing else.

`@register_model(name, task=..., ...)` records a keyword-only builder with
its task, default input size and the name of its classifier head (so local
pretrained weights can be loaded with the head replaced).  The family
modules (cnn, classify, yolo, yolo_pretrained, detect, segment) import this one to register;
it imports none of them.  Building and looking up by name is
`recog.models.factory`, which imports the families first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from recog.types import TaskName


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
    #: `--weights torchvision|timm|smp` -> the library's name of the file that fits the model
    #: or its backbone: torchvision's builder (its default weights), timm's architecture,
    #: smp's encoder (records of `recog.models.cached`)
    library_weights: Mapping[str, str] = field(default_factory=dict)
    #: the builder argument (`--model-args`) that names the encoder instead (unet: `encoder`)
    library_arg: str = ""
    #: the record of `recog.models.pretrained.TABLE` that fits this model (`--weights
    #: imagenet`, and the recipe's default where its file is on the machine); "": none
    pretrained: str = ""
    #: dotted prefix of the timm network that record loads into ("": the whole model)
    pretrained_at: str = ""


@dataclass(frozen=True)
class Range:
    """The allowed values of a builder's number argument, as `Annotated[int, Range(1, 512)]`
    (`recog.models.arguments` checks `--model-args` against it); `low` and `high` included."""

    low: float
    high: float


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, *, task: TaskName, train_defaults: Mapping[str, Any] | None = None, **fields: Any
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder `fn(*, num_classes, img_size, **kwargs)` under `name`.

    `fields` are `ModelSpec`'s other fields (`default_img_size=`, `head=`, ...): their types
    and defaults are described there, once; a misspelt one fails at import.  The
    description defaults to the first line of the builder's docstring."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        description = fields.pop("description", "") or (fn.__doc__ or "").strip().splitlines()[0]
        _REGISTRY[name] = ModelSpec(
            name=name,
            task=task,
            builder=fn,
            train_defaults=dict(train_defaults or {}),
            description=description,
            **fields,
        )
        return fn

    return wrap


def registered() -> Mapping[str, ModelSpec]:
    """A read-only view of what has been registered so far (the families register on import:
    ask `recog.models.factory`, which imports them all)."""
    return MappingProxyType(_REGISTRY)

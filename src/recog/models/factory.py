"""The model factory: the one door from a name a user types to a built model.

Importing this module imports every model family, whose `@register_model`
decorators fill `recog.models.registry`; then `create_model` builds by name,
`get_spec` answers what a name means and `list_models` lists them.
`timm:<name>` reaches any timm model.  Unknown names fail with the closest
registered names.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from recog.errors import RecogError

# each family registers its models when imported (the reason for importing them here)
from recog.models import classify, cnn, detect, segment, yolo, yolo_pretrained  # noqa: F401
from recog.models.arguments import check_model_args
from recog.models.registry import ModelSpec, registered
from recog.types import TaskName

TIMM_PREFIX = "timm:"


def list_models(task: TaskName | str | None = None) -> list[str]:
    """Registered names, sorted; only `task`'s with a task (timm models are not listed)."""
    return sorted(n for n, s in registered().items() if task is None or s.task == task)


def get_spec(name: str) -> ModelSpec:
    """The spec for `name`; `timm:<model>` gives a spec built on the fly."""
    if name.startswith(TIMM_PREFIX):
        return classify.timm_spec(name[len(TIMM_PREFIX) :])
    specs = registered()
    if name not in specs:
        close = difflib.get_close_matches(name, list(specs), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise RecogError(
            f"unknown model {name!r}{hint} (see `recog models`; any timm model as timm:<name>)"
        )
    return specs[name]


def create_model(
    name: str, *, num_classes: int, img_size: int | None = None, **kwargs: Any
) -> nn.Module:
    """The model `name` for `num_classes` classes at `img_size` (default: the spec's) pixels."""
    spec = get_spec(name)
    size = img_size or spec.default_img_size
    if size < spec.min_img_size:
        raise RecogError(
            f"model {name} needs images of at least {spec.min_img_size} px, not {size}"
        )
    check_model_args(name, spec.builder, kwargs)
    try:
        return spec.builder(num_classes=num_classes, img_size=size, **kwargs)
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as exc:
        if not kwargs:
            raise  # no argument of the user's: a bug of recog's
        # what the library a builder passes arguments on to (torchvision, timm, smp) says,
        # cut short: smp's unknown-encoder error lists all its encoders
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]
        args = " ".join(f"{k}={v}" for k, v in kwargs.items())
        raise RecogError(f"--model-args {args}: model {name} refused them ({first})") from exc

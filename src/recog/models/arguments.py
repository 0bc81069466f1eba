"""`--model-args` checked against the model builder's own signature, before anything is built.

Each argument must be one the builder names, of the type its annotation says
(`int`, `float`, `str`, a `Literal`, a sequence of ints), and in range: the
`Range` an `Annotated` annotation gives, else for a whole number a size, width
or depth from 1 to `MAX_INT`.  A builder that passes `**kwargs` on to its
library (torchvision, timm) takes other names too; the library's own error is
then the answer.  Issue 33: `width=abc` was a ValueError deep in the builder,
`width=-5` a negative tensor dimension, and `depth=0` a network of no layers.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

from recog.errors import RecogError
from recog.models.registry import Range

#: what the recipe, not `--model-args`, gives a builder
RESERVED = {"num_classes": "the data's classes", "img_size": "--img-size"}
#: the bound of a whole-number argument with no `Range` of its own: sizes, widths and depths
#: are positive, and 4096 is wider than any layer of the registered models (VGG's 4096)
MAX_INT = 4096
_SEQUENCES = (collections.abc.Sequence, list, tuple)


def check_model_args(name: str, builder: Callable[..., Any], args: Mapping[str, Any]) -> None:
    """RecogError naming the argument, the model and what is allowed, for the first bad one."""
    params = inspect.signature(builder).parameters
    target = builder.func if isinstance(builder, functools.partial) else builder
    hints = get_type_hints(target, include_extras=True)
    own = [k for k, p in params.items() if k not in RESERVED and p.kind is p.KEYWORD_ONLY]
    passes_on = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for key, value in args.items():
        if key in RESERVED:
            raise RecogError(f"--model-args {key}: set by {RESERVED[key]}, not a model argument")
        if key not in own:
            if passes_on:
                continue  # the library's own argument: its error, if any, is the answer
            known = ", ".join(own) or "none"
            raise RecogError(
                f"--model-args {key}: model {name} has no such argument (it takes: {known})"
            )
        problem = _problem(value, hints.get(key, Any))
        if problem:
            raise RecogError(f"--model-args {key}={value!r}: model {name} takes {problem}")


def _problem(value: Any, hint: Any) -> str:
    """What `hint` allows, when `value` is not of it; "" when it is."""
    bound = None
    if get_origin(hint) is Annotated:
        hint, *extras = get_args(hint)
        bound = next((e for e in extras if isinstance(e, Range)), None)
    if get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(get_args(hint)):
            return ""
        sequences = [o for o in options if get_origin(o) in _SEQUENCES]
        if sequences and isinstance(value, str):  # `Sequence[int] | str`: the same, as text
            return _sequence(value, bound)
        problems = [_problem(value, _annotated(o, bound)) for o in options]
        return "" if "" in problems else " or ".join(problems)
    if get_origin(hint) is Literal:
        allowed = get_args(hint)
        return "" if value in allowed else f"one of {', '.join(map(str, allowed))}"
    if hint is int:
        return _number(value, bound or Range(1, MAX_INT), whole=True)
    if hint is float:
        return _number(value, bound, whole=False)
    if hint is str:
        return "" if isinstance(value, str) and value else "a name"
    if get_origin(hint) in _SEQUENCES:
        return _sequence(value, bound)
    return ""


def _annotated(hint: Any, bound: Range | None) -> Any:
    return Annotated[hint, bound] if bound is not None else hint


def _number(value: Any, bound: Range | None, *, whole: bool) -> str:
    kind = "a whole number" if whole else "a number"
    allowed = f"{kind} from {bound.low:g} to {bound.high:g}" if bound else f"a finite {kind[2:]}"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (whole and not isinstance(value, int))
    ):
        return allowed
    if not math.isfinite(value) or (bound and not bound.low <= value <= bound.high):
        return allowed
    return ""


def _sequence(value: Any, bound: Range | None) -> str:
    """A list of whole numbers, or the same as comma-separated text (the CLI's `128,64,32`)."""
    items = value.split(",") if isinstance(value, str) else value
    bound = bound or Range(1, MAX_INT)
    allowed = f"comma-separated whole numbers from {bound.low:g} to {bound.high:g}"
    if not isinstance(items, list | tuple) or not items:
        return allowed
    try:
        numbers = [int(v) if isinstance(v, str) else v for v in items]
    except ValueError:
        return allowed
    return (
        allowed if any(_number(v, bound or Range(1, MAX_INT), whole=True) for v in numbers) else ""
    )

"""`recog train`'s flags, generated from the options `recog.config` declares.

Every option of `recog.config.TrainConfig` becomes a flag (`img_size` ->
`--img-size`) under its declared heading, with its declared help, metavar,
choices and default rule, so the CLI, the YAML config and the Python API
cannot drift apart: an option is declared once, in `recog.config`, and
nothing here names one.  Parsing only: the argparse default of every flag is
None, so `overrides` can tell a flag given from one left out.

Nothing here may import torch: `recog train --help` reads this module
(tests/cli/test_cli_first_contact.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from recog.config import GROUPS, Opt, TrainConfig, fixed_default, options
from recog.errors import RecogError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option as a flag under its heading, then the run options."""
    hints = get_type_hints(TrainConfig)
    groups = {title: parser.add_argument_group(title) for title in GROUPS}
    for f, opt in options():
        _add_option(groups[opt.group], f, opt, hints[f.name])
    run = groups["output and tracking"]
    run.add_argument("--config", type=Path, metavar="YAML",
                     help="a config.yaml to start from; flags override it (default: none)")  # fmt: skip
    run.add_argument("--resume", type=Path, metavar="RUN",
                     help="continue an interrupted run from RUN/last.ckpt (default: a new run)")  # fmt: skip
    run.add_argument(
        "--exist-ok",
        action="store_true",
        help="let --out name an existing run: its old outputs are removed, then it is trained "
        "anew (default: off, an existing run is refused)",
    )


def _add_option(group: Any, f: dataclasses.Field, opt: Opt, hint: Any) -> None:
    kwargs: dict[str, Any] = {"dest": f.name, "default": None}
    if opt.metavar:
        kwargs["metavar"] = opt.metavar
    elif hint in (int, float):
        kwargs["metavar"] = "N" if hint is int else "X"
    choices = _choices(hint)
    if hint is bool:
        kwargs["action"] = "store_true"
    elif choices:
        kwargs["choices"] = choices
    elif opt.parse == "pairs":
        kwargs["nargs"] = "+"
    else:  # text that `overrides` parses (10m, 8/255, a,b) stays text here
        kwargs["type"] = hint if hint in (int, float) and not opt.parse else str
    kwargs["help"] = f"{opt.help} (default: {_default_text(f, opt)})"
    action = group.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    if f.name == "model":
        action.completer = _model_names  # argcomplete: the registry, imported on a Tab only


def _choices(hint: Any) -> list[str] | None:
    if get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in get_args(hint) if a is not type(None))
    if get_origin(hint) is Literal:
        return [str(a) for a in get_args(hint)]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return [str(m.value) for m in hint]
    return None


def _default_text(f: dataclasses.Field, opt: Opt) -> str:
    """What a left-out flag becomes, for its help (`%` doubled: argparse formats help)."""
    if opt.rule:
        return opt.rule
    value = fixed_default(f)
    if isinstance(value, bool):
        return "on" if value else "off"
    if value in ({}, [], ""):
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("%", "%%")


def _model_names(**_: Any) -> list[str]:
    """The registered model names, for shell completion of --model (this imports torch)."""
    from recog.models.factory import list_models

    return [*list_models(None), "timm:"]


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def overrides(ns: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, as `TrainRequest` takes them."""
    from recog.config import parse_duration, parse_eps

    parsers = {
        "duration": parse_duration,
        "eps": lambda text: parse_eps(text, flag="--adv-eps"),
        "names": lambda text: [name.strip() for name in str(text).split(",")],
        "pairs": _pairs,
    }
    out: dict[str, Any] = {}
    for f, opt in options():
        value = getattr(ns, f.name, None)
        if value is None or value is False:
            continue
        out[f.name] = parsers[opt.parse](value) if opt.parse else value
    return out


def _pairs(items: list[str]) -> dict[str, Any]:
    """`--model-args width=64 depth=4` -> {"width": 64, "depth": 4}."""
    pairs = {}
    for item in items:
        if "=" not in item:
            raise RecogError(f"--model-args: expected KEY=VALUE, not {item!r}")
        key, raw = item.split("=", 1)
        pairs[key] = _parse_value(raw)
    return pairs

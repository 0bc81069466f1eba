"""`recog weights`: the pretrained files recog knows, which models use them, and whether each is here.

Parsing and printing only: the table is `recog.models.pretrained.TABLE` (the
pip packages' files) and `recog.models.cached.cache_records()` (the files
torchvision, timm and smp keep in their local caches, derived from the
registry).  A record is looked up as training looks it up (`record.path()`:
the pip package's metadata, never its code; the cache's folders), so "not
here" prints the same one line `recog train --weights ...` would stop with.
Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

#: what `recog models` shows for a model with no file here and no pip record
NONE = "-"
#: a model's pip record whose package is not installed
MISSING = "imagenet?"
#: the footer line for each mark `recog models` may show
_MEANING = {
    "imagenet": "the model's ImageNet file from a pip package is on this machine; training "
    "fine-tunes from it unless --weights none (`recog weights` lists the files)",
    MISSING: "recog knows ImageNet weights for the model but their pip package is not "
    "installed (`recog weights` says which to install)",
    "torchvision": "torchvision's file for the model is in the local torch cache "
    "(--weights torchvision)",
    "timm": "timm's file for the model is in the local cache (--weights timm)",
    "smp": "smp's file for the model's encoder is in the local cache (--weights smp)",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    text = (
        "list the pretrained files recog knows (pip packages, and the torchvision, timm and "
        "smp caches), the models that use them, and whether each is on this machine "
        "(nothing is downloaded)"
    )
    p = sub.add_parser("weights", help=text, description=text[0].upper() + text[1:] + ".")
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def records() -> list[tuple[Any, list[str]]]:
    """Every record, with the registered models that start from it: the pip files first,
    then the library caches' by `--weights` value."""
    from recog.models.cached import LIBRARIES, cache_records
    from recog.models.factory import get_spec, list_models
    from recog.models.pretrained import TABLE

    users: dict[str, list[str]] = {}
    for name in list_models():
        if get_spec(name).pretrained:
            users.setdefault(get_spec(name).pretrained, []).append(name)
    cached = sorted(
        cache_records().values(), key=lambda rm: (LIBRARIES.index(rm[0].locator.kind), rm[0].name)
    )
    return [(r, users.get(r.name, [])) for r in TABLE.values()] + cached


def describe() -> list[dict[str, Any]]:
    """One entry per record: what it is, who uses it, where its file is or would be."""
    from recog.errors import RecogError

    entries = []
    for record, models in records():
        try:
            path, missing = str(record.path()), None
        except RecogError as exc:
            path, missing = None, str(exc)
        entries.append(
            {
                "name": record.name,
                "arch": record.arch,
                "weights": record.locator.kind,
                "models": models,
                "imagenet_top1": record.imagenet_top1,
                "input_size": record.input_size,
                "params_m": record.params_m,
                "gmacs": record.gmacs,
                "licence": record.licence,
                "source": record.source(),
                "package": record.package or None,
                "sha256": record.sha256 or None,
                "preprocessing": {
                    "mean": list(record.mean),
                    "std": list(record.std),
                    "interpolation": record.interpolation,
                    "crop_pct": record.crop_pct,
                },
                "available": path is not None,
                "path": path,
                "expected": str(record.locator.expected()),
                "missing": missing,
            }
        )
    return entries


def mark(spec: Any, here: dict[str, bool]) -> str:
    """`recog models`' weights column for `spec`: the `--weights` values whose file is here
    (`imagenet`, `torchvision`, `timm`, `smp`), else `imagenet?` where its pip package is
    missing, else `-`; `here` caches record name -> available."""
    from recog.errors import RecogError
    from recog.models.cached import library_record
    from recog.models.pretrained import get

    found: list[tuple[str, Any]] = []
    if spec.pretrained:
        found.append(("imagenet", get(spec.pretrained)))
    for kind in spec.library_weights:
        try:
            found.append((kind, library_record(spec, kind, {})))
        except RecogError:  # the library has no weights for it
            continue
    shown = []
    for kind, record in found:
        if record.name not in here:
            here[record.name] = record.available()
        if here[record.name]:
            shown.append(kind)
    if shown:
        return ",".join(shown)
    return MISSING if spec.pretrained else NONE


def footer(marks: set[str]) -> list[str]:
    """The lines under `recog models` that explain the weights marks it showed."""
    shown = {kind for m in marks for kind in m.split(",")}
    return [f"weights {k}: {meaning}" for k, meaning in _MEANING.items() if k in shown]


def _cells(e: dict[str, Any]) -> tuple[str, ...]:
    top1, params = e["imagenet_top1"], e["params_m"]
    return (
        e["name"],
        e["arch"],
        ",".join(e["models"]) or "-",
        f"{100 * top1:.1f}%" if top1 is not None else "-",
        f"{e['input_size']}px" if e["input_size"] else "-",
        f"{params:.1f}M" if params is not None else "-",
        e["licence"] or "-",
    )


def cmd_weights(ns: argparse.Namespace) -> int:
    entries = describe()
    if ns.json:
        print(json.dumps(entries, indent=1))
        return 0
    head = ("name", "architecture", "models", "top-1", "input", "params", "licence")
    rows = [_cells(e) for e in entries]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    right = {3, 4, 5}  # figures align right

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(head))
    group = None
    for entry, row in zip(entries, rows, strict=True):
        if entry["weights"] != group:
            group = entry["weights"]
            if group != "imagenet":  # the caches: one line each, where the file is or goes
                print(f"--weights {group}: the library's file in its local cache")
        print(line(row))
        if entry["available"]:
            print(f"  here: {entry['path']} ({entry['source']})")
        elif group == "imagenet":
            reason = entry["missing"].removeprefix(f"pretrained weights {entry['name']}: ")
            print(f"  not here: {reason}")
        else:
            print(f"  not here: put it at {entry['expected']}")
    here = sum(e["available"] for e in entries)
    print(f"{here} of {len(entries)} on this machine; nothing is downloaded.")
    print(
        "--weights imagenet: the model's pip file (the default where it is here); none: from "
        "scratch; torchvision, timm, smp: the library's file above, put in its cache by hand; "
        "PATH: a file (docs/models.md)"
    )
    return 0

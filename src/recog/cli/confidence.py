"""`recog calibrate` and `recog ood`: how far a classifier's confidence can be trusted.

Parsing and printing only, as in `recog.cli`; each command calls the
`Recognizer` (`recog.api`), whose work is `recog.confidence`'s.
`add_parsers` is called by `recog.cli.build_parser`; `COMMANDS` maps each
command to its function.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

#: recog.confidence.ood.SCORES and DEFAULT_SCORE, written out so `--help` imports no torch
#: (tests/cli/test_cli_first_contact.py keeps them equal)
SCORES = ("msp", "energy", "knn", "mahalanobis", "imagenet_knn", "imagenet_mahalanobis")
DEFAULT_SCORE = "imagenet_knn"
FALLBACK_SCORE = "msp"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit temperature scaling and the out-of-distribution reject rule on held-out data",
    )
    p.add_argument("run", type=Path)
    p.add_argument(
        "--data", help="labelled held-out images, the run's classes (default: its validation split)"
    )
    p.add_argument(
        "--tpr",
        type=float,
        default=0.95,
        help="fraction of in-distribution images the reject rule keeps (default 0.95)",
    )
    p.add_argument(
        "--ood-score",
        choices=SCORES,
        help=f"the score the reject rule thresholds (default {DEFAULT_SCORE}: k-NN on the "
        f"untouched ImageNet features of EfficientNet-Lite0, or {FALLBACK_SCORE} where its "
        "package is not installed)",
    )
    p.add_argument("--no-ood", action="store_true", help="fit the temperature only, no reject rule")
    p.add_argument("--device", default="auto")

    p = sub.add_parser(
        "ood", help="AUROC and FPR at 95%% TPR of each out-of-distribution score on your images"
    )
    p.add_argument("run", type=Path)
    p.add_argument(
        "--in",
        dest="inside",
        nargs="+",
        metavar="PATH",
        help="in-distribution images (default: the run's validation split)",
    )
    p.add_argument(
        "--out",
        dest="outside",
        nargs="+",
        required=True,
        metavar="PATH",
        help="out-of-distribution images: files, folders or globs",
    )
    p.add_argument("--save-dir", type=Path, help="where ood.json goes (default: the run)")
    p.add_argument("--device", default="auto")


def cmd_calibrate(ns: argparse.Namespace) -> int:
    from recog import api
    from recog.confidence.calibration import CALIBRATION_NAME
    from recog.confidence.fitting import check_tpr

    check_tpr(ns.tpr)  # before anything slow
    rec = api.load(ns.run, device=ns.device)
    cal = rec.calibrate(ns.data)
    print(f"temperature {cal.temperature:.4f} (fitted on {cal.images} images of {cal.data})")
    print(f"ECE {cal.ece_before:.4f} -> {cal.ece_after:.4f}")
    print(f"NLL {cal.nll_before:.4f} -> {cal.nll_after:.4f}")
    written = [ns.run / CALIBRATION_NAME]
    if not ns.no_ood:
        rule = rec.fit_ood(ns.data, score=ns.ood_score, tpr=ns.tpr)
        print(
            f"reject rule: {rule.score} score below {rule.threshold:.6g} is unknown "
            f"(keeps {rule.extra.get('kept', rule.tpr):.1%} of the {rule.images} held-out images)"
        )
        written += [ns.run / "ood_rule.json"]
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_ood(ns: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from recog import api

    rec = api.load(ns.run, device=ns.device)
    table = rec.ood_report(ns.outside, inputs=ns.inside, save_dir=ns.save_dir)
    out = Table(title="out-of-distribution scores (in-distribution = positive)")
    for column in ("score", "AUROC", "FPR at 95% TPR"):
        out.add_column(column, justify="left" if column == "score" else "right")
    for name, row in table.items():
        label = f"{name} (default)" if name == DEFAULT_SCORE else name
        out.add_row(label, f"{row['auroc']:.4f}", f"{row['fpr95']:.4f}")
    Console(width=100).print(out)
    print(f"wrote {(ns.save_dir or ns.run) / 'ood.json'}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "calibrate": cmd_calibrate,
    "ood": cmd_ood,
}

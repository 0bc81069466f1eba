"""`recog attack`: how the model's metric falls under an adversarial attack, eps by eps.

Parsing only, as in `recog.cli`; the command calls `Recognizer.attack` (`recog.api`)
and prints the curve and any flag that says the numbers are not to be trusted.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

#: recog.robust.ATTACKS, written out so `--help` imports no torch (a test keeps them equal)
ATTACKS = ("fgsm", "pgd", "cw", "autoattack", "square", "vanish")
DEFAULT_EPS = "1/255,2/255,4/255,8/255"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attack", help="robustness: the metric under an adversarial attack at each eps"
    )
    p.add_argument("run", type=Path)
    p.add_argument("--data", help="labelled images to attack (default: the run's validation split)")
    p.add_argument("--attack", choices=ATTACKS, default="pgd",
                   help="pgd/fgsm/square for every task (the task's own loss; square: no "
                   "gradients, linf only on detectors and segmenters), vanish for detectors; "
                   "cw, autoattack for classifiers (default pgd)")  # fmt: skip
    p.add_argument("--eps", default=DEFAULT_EPS,
                   help=f"comma-separated radii in [0, 1] pixel units, 8/255 accepted; L2 radii may pass 1 (default {DEFAULT_EPS})")  # fmt: skip
    p.add_argument("--norm", choices=("linf", "l2"), default="linf", help="default linf")
    p.add_argument("--steps", type=int,
                   help="attack steps (default 10; cw 50; square: queries, default 1000)")  # fmt: skip
    p.add_argument("--alpha", help="step size (default 2.5 eps / steps)")
    p.add_argument("--images", type=int, default=200, dest="num_images",
                   help="images attacked, spread over the data (default 200)")  # fmt: skip
    p.add_argument("--targeted", metavar="CLASS", help="push every image towards this class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, help="default: the run's")
    p.add_argument("--save-dir", type=Path, help="default RUN/robustness")
    p.add_argument("--device", default="auto")


def cmd_attack(ns: argparse.Namespace) -> int:
    from recog import api
    from recog.config import parse_eps
    from recog.errors import RecogError

    linf = ns.norm == "linf"
    eps = [
        parse_eps(e, flag="--eps", at_most_one=linf) for e in str(ns.eps).split(",") if e.strip()
    ]
    if not eps:
        raise RecogError("--eps: give one or more radii, e.g. 1/255,2/255")
    alpha = None if ns.alpha is None else parse_eps(ns.alpha, flag="--alpha", at_most_one=linf)
    from recog.api.trust import ATTACK_BATCH, ATTACK_IMAGES, ATTACK_STEPS, check_bound

    check_bound("--images", ns.num_images, 1, ATTACK_IMAGES)
    if ns.steps is not None:
        check_bound("--steps", ns.steps, 1, ATTACK_STEPS)
    if ns.batch_size is not None:
        check_bound("--batch-size", ns.batch_size, 1, ATTACK_BATCH)
    rec = api.load(ns.run, device=ns.device)
    record = rec.attack(
        ns.data, attack=ns.attack, eps=eps, norm=ns.norm, steps=ns.steps, alpha=alpha,
        images=ns.num_images, targeted=ns.targeted, seed=ns.seed, batch_size=ns.batch_size,
        save_dir=ns.save_dir,
    )  # fmt: skip
    _print_curve(record)
    save_dir = ns.save_dir or (ns.run / "robustness")
    for flag in record["checks"]["flags"]:
        print(f"warning: {flag}")
    print(f"robustness: {save_dir / 'robustness.json'} ({record['seconds']:.1f} s)")
    # no number to report (the gradient never reached the input): not a success
    measured = all(row[record["metric"]] is not None for row in record["robust"])
    return 0 if measured else 1


def _print_curve(record: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    metric = record["metric"]
    names = [k for k in record["clean"]]
    out = Table(title=f"{record['attack']} ({record['norm']}, {record['steps']} steps, "
                f"{record['backend']}) on {record['images']} images")  # fmt: skip
    out.add_column("eps")
    for name in names:
        out.add_column(name + (" (main)" if name == metric else ""), justify="right")
    out.add_row("clean", *(f"{record['clean'][k]:.4f}" for k in names))
    for row in record["robust"]:
        out.add_row(
            f"{row['eps']:.4g} ({row['eps'] * 255:.3g}/255)",
            *("-" if row.get(k) is None else f"{row[k]:.4f}" for k in names),
        )
    Console(width=120).print(out)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"attack": cmd_attack}

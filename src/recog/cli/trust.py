"""`recog explain`: the command that shows what a model's answers rest on, and how faithful each map is.

(`recog calibrate` and `recog ood` live beside it in `recog.cli.confidence`.)

Parsing only, as in `recog.cli`; each command calls the `Recognizer`
(`recog.api`) and prints what it measured.  `add_parsers` is called by
`recog.cli.build_parser`; `COMMANDS` maps each command to its function.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

#: recog.explain.METHODS, written out so `--help` imports no torch (a test keeps them equal)
EXPLAIN_METHODS = (
    "gradcam", "gradcam++", "layercam", "eigencam", "ig", "occlusion", "drise", "random",
)  # fmt: skip


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="heat maps of what a prediction rests on; --score measures how faithful they are",
    )
    p.add_argument("run", type=Path)
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files, folders or globs")
    p.add_argument(
        "--method",
        action="append",
        choices=[*EXPLAIN_METHODS, "all"],
        help="explanation method (repeatable; default gradcam; all: every method but random, "
        "the baseline --score always adds)",
    )
    p.add_argument("--target", help="explain this class instead of the predicted one")
    p.add_argument(
        "--save-dir", type=Path, help="where maps, overlays and scores go (default RUN/explain)"
    )
    p.add_argument(
        "--score",
        action="store_true",
        help="measure faithfulness (deletion/insertion AUC, randomization check) on --data",
    )
    p.add_argument("--data", help="images to score on (default: the run's validation split)")
    p.add_argument("--images", type=int, default=16, dest="num_images", help="images to score")
    p.add_argument(
        "--steps",
        type=int,
        help="deletion/insertion steps per curve (default 20 with --score, 10 for each map)",
    )
    p.add_argument("--device", default="auto")


def cmd_explain(ns: argparse.Namespace) -> int:
    from recog import api
    from recog.errors import RecogError

    every = [m for m in EXPLAIN_METHODS if m != "random"]
    methods = every if "all" in (ns.method or []) else (ns.method or ["gradcam"])
    if not ns.images and not ns.score:
        raise RecogError("recog explain: give IMAGE paths, or --score to measure faithfulness")
    from recog.api.trust import EXPLAIN_IMAGES, EXPLAIN_STEPS, check_bound

    check_bound("--images", ns.num_images, 1, EXPLAIN_IMAGES)
    if ns.steps is not None:
        check_bound("--steps", ns.steps, 2, EXPLAIN_STEPS)
    rec = api.load(ns.run, device=ns.device)
    save_dir = ns.save_dir or (ns.run / "explain")
    if ns.images:
        from recog.data import find_images

        files = find_images(list(ns.images))
        maps = rec.explain(
            files, methods=methods, target=ns.target, save_dir=save_dir, steps=ns.steps or 10
        )
        _print_maps(maps)
        print(f"{len(maps)} maps of {len(files)} images in {save_dir}")
    if ns.score:
        table = rec.score_explanations(
            ns.data, methods=methods, images=ns.num_images, steps=ns.steps or 20,
            save_dir=save_dir,
        )  # fmt: skip
        _print_ranking(table)
        print(f"scores: {save_dir / 'faithfulness.json'}")
    return 0


def _print_maps(maps: list) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Table(title="maps (deletion: lower is better; insertion: higher is better)")
    for column in ("image", "target", "method", "deletion", "insertion", "random del/ins"):
        out.add_column(column)
    for e in maps:
        s = e.scores
        out.add_row(
            Path(e.image).name,
            e.target.name,
            e.method,
            f"{s['deletion_auc']:.3f}",
            f"{s['insertion_auc']:.3f}",
            f"{s['random_deletion_auc']:.3f} / {s['random_insertion_auc']:.3f}",
        )
    Console(width=140).print(out)


def _print_ranking(table: dict[str, dict[str, float]]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Table(title="faithfulness (deletion: lower is better; insertion: higher is better)")
    for column in ("rank", "method", "deletion AUC", "insertion AUC", "randomization rho"):
        out.add_column(column, justify="left" if column == "method" else "right")
    for rank, (method, row) in enumerate(table.items(), start=1):
        rho = row.get("randomization_spearman")
        out.add_row(
            str(rank),
            method,
            f"{row['deletion_auc']:.4f}",
            f"{row['insertion_auc']:.4f}",
            "-" if rho is None else f"{rho:.3f}",
        )
    Console(width=120).print(out)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"explain": cmd_explain}

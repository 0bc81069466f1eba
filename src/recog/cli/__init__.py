# PYTHON_ARGCOMPLETE_OK  (argcomplete: this program answers Tab completion)
"""`recog` command line: argument parsing only; every subcommand calls `recog.api` (one job, one file per subcommand would scatter the parser).

`recog train` options are generated from `TrainConfig`'s fields, so the CLI,
the YAML config and the Python API cannot drift apart.  User mistakes
(`RecogError`) print one line and exit 2; there is no traceback for them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from recog.cli import (
    confidence,
    deploy,
    doctor,
    help_texts,
    predict,
    robust,
    train_options,
    trust,
    weights,
)
from recog.errors import RecogError
from recog.names import TaskName

TRAIN_EXAMPLES = """examples:
  recog train --data digits --epochs 5
  recog train --data ./mushrooms --model resnet18 --time 10m
  recog train --task detect --data shapes --model yolo_n --epochs 15
  recog train --config runs/classify/digits-cnn/config.yaml --lr 0.01 --out runs/lr-0.01
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recog", description="Deep-learning image recognition end to end."
    )
    parser.add_argument("--version", action="version", version=f"recog {_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an internal error (RECOG_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_val(sub)
    predict.add_parsers(sub)
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--task", choices=[str(t) for t in TaskName])
    weights.add_parser(sub)
    _add_data(sub)
    _add_serve(sub)
    trust.add_parsers(sub)
    confidence.add_parsers(sub)
    robust.add_parsers(sub)
    deploy.add_parsers(sub)
    help_texts.finish(parser, skip=frozenset({"train"}))  # train's help is its own
    return parser


# The parsers of the subcommands this module runs, one function each; the others' live beside
# their commands (predict, weights, trust, confidence, robust, deploy).


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model; writes a run directory",
        usage="%(prog)s [--data PATH] [--model NAME] [--epochs N | --steps N | --time DURATION] "
        "[options]",
        description="Train a model and write its run directory.\n\nEvery option left out is "
        "chosen by the recipe from the data, the model and this machine;\nthe start block "
        "prints what was chosen and why, and RUN/config.yaml records it.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train_options.add_arguments(p)


def _add_val(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("val", help="evaluate a run (its own validation split, or --data)")
    p.add_argument("run", type=Path)
    p.add_argument("--data", help="data to evaluate on (same classes as the run)")
    p.add_argument(
        "--out", type=Path, help="where to write metrics, plots and report (default RUN/val)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--backend", choices=deploy.BACKENDS, default="torch",
                   help="torch (the run's weights), or the run's export on onnxruntime or OpenVINO")  # fmt: skip
    # mAP integrates precision down to the model's lowest kept score: predict's 0.25 would cut it
    predict.add_selection(p, conf_default="default: none, every box the model keeps (yolo: "
                          "down to 0.001), as mAP needs; set it to measure what predict shows")  # fmt: skip


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="dataset tools")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    for action, text in (
        ("check", "validate a dataset and list its problems"),
        ("stats", "counts and image sizes"),
    ):
        q = dsub.add_parser(action, help=text)
        q.add_argument("path")
        q.add_argument("--json", action="store_true", help="print JSON")
        q.add_argument("--classes", help="class names of mask values 0, 1, ... (mask folders)")
    _add_data_files(dsub)
    doctor.add_parser(dsub)
    q = dsub.add_parser(
        "export-feedback",
        help="write user corrections from a `recog serve` history as a training set",
    )
    q.add_argument("--db", required=True, metavar="URL", help="the history's SQLAlchemy URL")
    q.add_argument("--model", help="only this served model's corrections")
    q.add_argument("out", type=Path)


def _add_data_files(dsub: argparse._SubParsersAction) -> None:
    """`recog data convert` and `split`: the actions that write a set in another format."""
    q = dsub.add_parser(
        "convert",
        help="convert detection annotations between COCO, YOLO and VOC; "
        "segmentations between COCO and image/mask folders (--to masks)",
    )
    q.add_argument("src")
    q.add_argument("--to", required=True, choices=["coco", "yolo", "voc", "masks"])
    q.add_argument("--classes", help="class names of mask values 0, 1, ... (mask folders)")
    q.add_argument("out", type=Path)
    q = dsub.add_parser(
        "split",
        help="write a detection set as YOLO with images/train and images/val "
        "(the fixed-seed split `recog train` uses)",
    )
    q.add_argument("src")
    q.add_argument("out", type=Path)
    q.add_argument("--to", default="yolo", choices=["yolo"])
    q.add_argument("--val-split", type=float, default=0.2)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--group-by", default="", metavar="PATTERN",
                   help="keep each session whole on one side: a file-name pattern whose (group) "
                        "names it, e.g. '^(\\d+)_' (041_066.jpg -> 041)")  # fmt: skip


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="REST API and web page for one or more runs")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN")
    predict.add_selection(p, conf_default=predict.PREDICT_CONF +
                          "; a request's conf, iou, max_det parameters override these")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--db",
        default="sqlite:///recog-history.db",
        metavar="URL",
        help="history store, any SQLAlchemy URL, e.g. postgresql://user@host/db "
        "(default: SQLite in the working directory)",
    )
    p.add_argument(
        "--history-queue",
        type=int,
        default=10_000,
        metavar="N",
        help="history rows held in memory while the database is down; more are dropped",
    )
    p.add_argument(
        "--keep-images", action="store_true", help="store uploaded images in the history"
    )
    p.add_argument(
        "--camera-history",
        action="store_true",
        help="write every answered camera frame to the history (default: none; /metrics counts them)",
    )
    p.add_argument(
        "--api-key", default=None, help="require this key (X-API-Key); default $RECOG_API_KEY"
    )
    p.add_argument("--max-batch", type=int, default=16, help="images per batched forward pass")
    p.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="how long a batch waits to fill up"
    )
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="bytes cap of one image")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="decoded pixels cap")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a request may take")
    p.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN", help="allow CORS from it"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--backend", choices=deploy.BACKENDS, default="torch",
                   help="torch, or each run's export on onnxruntime or OpenVINO; an exported file may also be given as RUN")  # fmt: skip
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--no-access-log", action="store_true")


def _version() -> str:
    from recog.version import __version__

    return __version__


# -------------------------------------------------------------- subcommands
def cmd_train(ns: argparse.Namespace) -> int:
    from recog import api
    from recog.config import TrainRequest

    overrides = train_options.overrides(ns)
    if ns.resume is not None:
        # every flag goes to train(), which uses a budget and refuses any other change
        config = TrainRequest.load(ns.config) if ns.config else None
        rec = api.train(resume=ns.resume, config=config, exist_ok=ns.exist_ok, **overrides)
    else:
        base = TrainRequest.load(ns.config) if ns.config else TrainRequest()
        # a budget given on the command line replaces the config's whole budget
        if {"epochs", "steps"} & set(overrides):
            base = base.replace(epochs=None, steps=None)
        if ns.config and "out" not in overrides:
            base = base.replace(out=None, name=None)  # a new run directory, never the old one's
        cfg = TrainRequest.from_dict({**base.given(), **overrides}, source="command line")
        given = sorted({"adv_eps", "adv_steps", "adv_mix"} & set(overrides))
        if given and cfg.adv_train == "none":
            flags = " and ".join("--" + k.replace("_", "-") for k in given)
            raise RecogError(f"{flags}: only with --adv-train pgd, fgsm-rs or trades")
        given = sorted({"distill_weight", "distill_temperature"} & set(overrides))
        if given and cfg.teacher == "none":
            flags = " and ".join("--" + k.replace("_", "-") for k in given)
            raise RecogError(f"{flags}: only with --teacher RUN")
        rec = api.train(config=cfg, exist_ok=ns.exist_ok)
    if _is_main():
        metrics = json.loads((rec.run_dir / "metrics.json").read_text())
        for line in _end_block(rec, metrics):
            print(line)
    return 0


def _end_block(rec: Any, metrics: dict[str, Any]) -> list[str]:
    """What a finished run says: its best epoch, its numbers, where it is, what to do next."""
    primary = rec.task.scores.primary
    run = rec.run_dir
    score = float(metrics.get(primary, 0.0))
    lines = [
        f"best epoch {metrics.get('best_epoch')} of {metrics.get('epochs_run')}: "
        f"{primary} {score:.4f} on the validation images"
        + (f", trained in {metrics['train_seconds']:.1f} s" if "train_seconds" in metrics else ""),
        "  " + _headline(rec.task, {k: v for k, v in metrics.items() if k != "train_seconds"}),
        f"run directory: {run}",
        f"weights: {run / 'model.safetensors'}",
        f"report: {run / 'report.html'}",
    ]
    if score <= 0.0:
        lines.append(
            f"warning: {primary} stayed at 0: the model learned nothing it could show on the "
            "validation data; train longer (--epochs, --time), check the labels with "
            f"`recog data check {rec.config.data}`, or try a lower --lr"
        )
    opener = {"darwin": "open", "win32": "start"}.get(sys.platform, "xdg-open")
    lines += [
        "next:",
        f"  recog val {run}                # metrics, plots and report (--data for other images)",
        f"  recog predict {run} IMAGES...  # labels of new images (--format json, --save-dir)",
        f"  recog export {run}             # an ONNX file, checked against the run",
        f"  recog serve {run}              # REST API and web page",
        f"  {opener} {run / 'report.html'}",
    ]
    return lines


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _headline(task: Any, metrics: dict[str, Any]) -> str:
    keys = (*task.scores.headline, "train_seconds")
    return "  ".join(
        f"{k} {metrics[k]:.4f}" for k in keys if isinstance(metrics.get(k), int | float)
    )


def cmd_val(ns: argparse.Namespace) -> int:
    from recog import api

    rec = api.load(ns.run, device=ns.device, backend=ns.backend)
    out = ns.out or (ns.run / "val")
    metrics = rec.evaluate(ns.data, out_dir=out, **predict.selection(ns))
    print(_headline(rec.task, metrics))
    print(f"report: {out / 'report.html'}")
    return 0


def cmd_models(ns: argparse.Namespace) -> int:
    from recog.models.factory import get_spec, list_models

    # epochs and batch come from the data (the recipe) unless a model fixes its own
    print(
        f"{'model':22s} {'task':9s} {'size':>6s} {'epochs':>6s} {'batch':>5s} "
        f"{'weights':9s}  description"
    )
    here: dict[str, bool] = {}
    marks: set[str] = set()
    for name in list_models(ns.task):
        spec = get_spec(name)
        epochs = str(spec.train_defaults.get("epochs", "data"))
        batch = str(spec.train_defaults.get("batch_size", "data"))
        mark = weights.mark(spec, here)
        marks.add(mark)
        print(
            f"{name:22s} {spec.task:9s} {spec.default_img_size:4d}px {epochs:>6s} {batch:>5s}"
            f" {mark:9s}  {spec.description}"
        )
    print(
        f"{'timm:<name>':22s} {'classify':9s} {'':>6s} {'data':>6s} {'data':>5s} "
        f"{weights.NONE:9s}  any timm model"
    )
    for line in weights.footer(marks):
        print(line)
    return 0


def cmd_data(ns: argparse.Namespace) -> int:
    if ns.data_command == "doctor":
        return doctor.cmd_doctor(ns)
    if ns.data_command == "export-feedback":
        from recog.serve.export import export_feedback

        summary = export_feedback(ns.db, ns.out, model=ns.model)
        for name, info in summary.items():
            print(f"{name}: {json.dumps(info)}")
        return 0
    if ns.data_command == "convert":
        from recog.data.formats.convert import convert_data

        written = convert_data(str(ns.src), to=ns.to, out=str(ns.out), classes=ns.classes)
        print(f"wrote {written}")
        return 0
    if ns.data_command == "split":
        from recog.data.formats.convert import split_detection

        written = split_detection(
            ns.src, to=ns.to, out=ns.out, val_split=ns.val_split, seed=ns.seed,
            group_by=ns.group_by,
        )  # fmt: skip
        print(f"wrote {written}")
        return 0
    from recog.data.check import data_report

    report = data_report(str(ns.path), classes=ns.classes)
    problems = report.get("problems", [])
    found = 1 if ns.data_command == "check" and problems else 0  # check: exit 1 on problems
    if ns.json:
        print(json.dumps(report, indent=1, default=str))
        return found
    from rich.console import Console
    from rich.pretty import Pretty

    con = Console()
    shown = (
        {k: v for k, v in report.items() if k != "problems"}
        if ns.data_command == "stats"
        else report
    )
    con.print(Pretty(shown, expand_all=False))
    if ns.data_command == "check":
        print(f"{len(problems)} problem(s)" if problems else "no problems found")
    return found


def cmd_serve(ns: argparse.Namespace) -> int:
    from recog.serve import Limits, ServeConfig, serve

    for flag, value, low, high in (
        ("--timeout", ns.timeout, 0.001, 3600),  # an hour: past it a client has long gone
        ("--max-wait-ms", ns.max_wait_ms, 0, 10_000),
        ("--max-batch", ns.max_batch, 1, 4096),
        ("--max-upload-mb", ns.max_upload_mb, 0.001, 1024),
        ("--max-pixels", ns.max_pixels, 1, 1_000_000_000),
        ("--history-queue", ns.history_queue, 1, 10_000_000),
    ):
        if not value >= low:  # NaN too: it is in no range
            raise RecogError(f"{flag} {value}: must be at least {low}")
        if value > high:
            raise RecogError(f"{flag} {value}: must be at most {high}")
    limits = Limits(
        max_bytes=int(ns.max_upload_mb * 1024 * 1024),
        max_pixels=ns.max_pixels,
        read_timeout_s=ns.timeout,
        predict_timeout_s=ns.timeout,
    )
    config = ServeConfig(
        max_batch=ns.max_batch,
        max_wait_ms=ns.max_wait_ms,
        api_key=ns.api_key or os.environ.get("RECOG_API_KEY") or None,
        cors_origins=tuple(ns.cors_origin),
        keep_images=ns.keep_images,
        camera_history=ns.camera_history,
        db_url=ns.db,
        history_queue=ns.history_queue,
        limits=limits,
        selection=predict.selection(ns),
    )
    serve(
        ns.runs,
        config,
        host=ns.host,
        port=ns.port,
        device=ns.device,
        backend=ns.backend,
        log_level=ns.log_level,
        access_log=not ns.no_access_log,
    )
    return 0


COMMANDS = {
    "train": cmd_train,
    "val": cmd_val,
    **predict.COMMANDS,
    "models": cmd_models,
    "weights": weights.cmd_weights,
    "data": cmd_data,
    "serve": cmd_serve,
    **trust.COMMANDS,
    **confidence.COMMANDS,
    **robust.COMMANDS,
    **deploy.COMMANDS,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # a Tab under `register-python-argcomplete recog`
        import argcomplete

        argcomplete.autocomplete(parser)  # prints the completions and exits
    ns = parser.parse_args(argv)
    try:
        return COMMANDS[ns.command](ns)
    except RecogError as exc:
        print(f"recog: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recog: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `recog ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk, a permission, a vanished file: the OS said why
        if _debug(ns):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"recog: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last line of defence, not the fix
        if _debug(ns):
            raise
        print(
            f"recog: internal error: {exc.__class__.__name__}: {exc} "
            "(run again with --debug or RECOG_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _debug(ns: argparse.Namespace) -> bool:
    return bool(getattr(ns, "debug", False)) or os.environ.get("RECOG_DEBUG", "") not in ("", "0")

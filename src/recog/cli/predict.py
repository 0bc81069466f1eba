"""`recog predict`: parsing, and the choice between the table on stdout and a streamed `--out`.

Without `--out` the predictions are gathered and printed (table, JSON or CSV): for
a few images at a terminal.  With `--out results.parquet|.jsonl` they stream
(`recog.batch`): decoded by `--num-workers` processes, written a batch at a time,
`--resume`-able, on this machine or through Ray Data (`--engine ray`).  Videos
are `recog.cli.video`'s.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recog.cli import video
from recog.cli.deploy import BACKENDS
from recog.cli.rows import csv_text
from recog.errors import RecogError
from recog.paths import refuse_overlap

ENGINES = ("local", "ray")


def _workers(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: must be 0 (decode in this process) or more")
    return value


def add_selection(p: argparse.ArgumentParser, *, conf_default: str) -> None:
    """`--conf`, `--iou`, `--max-det` (`Task.select`; `recog predict`, `val` and `serve`)."""
    p.add_argument("--conf", type=float, metavar="P",
                   help=f"lowest score kept: boxes (detection, instances), classes listed in top-k "
                        f"(classification); {conf_default}")  # fmt: skip
    p.add_argument("--iou", type=float, metavar="IOU",
                   help="class-aware NMS at this overlap, after the model's own (yolo 0.7, faster_rcnn "
                        "0.5, ssd300 0.45, ssdlite 0.55), which it cannot undo (default: none more)")  # fmt: skip
    p.add_argument("--max-det", type=int, metavar="N",
                   help="most boxes per image, best first (default 100)")  # fmt: skip


def selection(ns: argparse.Namespace) -> dict[str, Any]:
    """The parsed `--conf`, `--iou`, `--max-det` as `Recognizer` keyword arguments."""
    return {"conf": ns.conf, "iou": ns.iou, "max_det": ns.max_det}


PREDICT_CONF = "default 0.25 for detection, 0.5 for instances, 0 (all) for classification"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict image files, folders, globs, manifests (.csv/.parquet of paths), fsspec URLs, or videos",
    )
    p.add_argument("run", type=Path)
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--format", choices=["table", "json", "csv", "coco"], default="table",
                   help="what stdout shows without --out (coco: COCO results JSON of the boxes, "
                        "image ids from 1 in input order, category ids class index + 1)")  # fmt: skip
    p.add_argument("--coco-gt", type=Path, metavar="JSON",
                   help="--format coco: take image ids (by file name) and category ids (by class "
                        "name) from this COCO ground truth, so the results evaluate against it")  # fmt: skip
    p.add_argument("--out", type=Path,
                   help="stream one row per image to this .parquet or .jsonl file instead (for many images)")  # fmt: skip
    p.add_argument("--resume", action="store_true",
                   help="--out: continue an interrupted job, skipping the images already written")  # fmt: skip
    p.add_argument("--num-workers", type=_workers,
                   help="--out: processes decoding images, the model on the cores left (default: "
                        "measured on the first batch); --engine ray: model actors (default 1)")  # fmt: skip
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="--out: run here, or through Ray Data (pip install 'recog[ray]')")  # fmt: skip
    p.add_argument(
        "--ray-address", help="--engine ray: a running cluster (default: start one here)"
    )
    p.add_argument("--save-dir", type=Path,
                   help="also save each image with its prediction drawn on it, at its path "
                        "relative to the inputs' common folder (and a mask PNG for segmentation)")  # fmt: skip
    add_selection(p, conf_default=PREDICT_CONF)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--no-reject",
        action="store_true",
        help="answer a class for every image, even below the run's out-of-distribution threshold",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--vid-stride", type=video.stride, metavar="N",
                   help="videos (.mp4, .mov, ...): predict every N-th frame (default 1, every frame)")  # fmt: skip
    p.add_argument("--stream", action="store_true",
                   help="PATH is a live stream (rtsp://, http(s)://...mjpg or .mp4, or a file played "
                        "at its own speed): predict the newest frame each time the model is free, "
                        "one JSONL row per frame as it comes; Ctrl-C stops")  # fmt: skip
    p.add_argument("--max-frames", type=video.stride, metavar="N",
                   help="--stream: stop after N predicted frames (default: when the stream ends)")  # fmt: skip
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="torch (the run's weights), or the run's export on onnxruntime or OpenVINO (`recog export`)")  # fmt: skip


def _refuse_mismatched(ns: argparse.Namespace) -> None:
    if ns.coco_gt is not None and ns.format != "coco":
        raise RecogError("--coco-gt: only with --format coco")
    if ns.batch_size < 1:
        raise RecogError(f"--batch-size {ns.batch_size}: must be 1 or more")
    if ns.out is None:
        for flag, value in (("--resume", ns.resume), ("--num-workers", ns.num_workers),
                            ("--engine ray", ns.engine == "ray"), ("--ray-address", ns.ray_address)):  # fmt: skip
            if value not in (None, False):
                raise RecogError(f"{flag} needs --out FILE (.parquet or .jsonl)")
        return
    if ns.engine == "ray":
        if ns.resume:
            raise RecogError("--resume: the local engine's (Ray writes a fresh output folder)")
        if ns.save_dir:
            raise RecogError("--save-dir: the local engine's (Ray workers write only the table)")
        if ns.out.suffix != ".parquet":
            raise RecogError(f"{ns.out}: --engine ray writes Parquet (--out NAME.parquet)")
    elif ns.ray_address:
        raise RecogError("--ray-address needs --engine ray")


def cmd_predict(ns: argparse.Namespace) -> int:
    if ns.top_k < 1:
        raise RecogError(f"--top-k: must be at least 1, not {ns.top_k}")
    _refuse_mismatched(ns)
    _refuse_writing_over(ns, _local_roots(ns.paths))
    if ns.stream:
        return video.cmd_stream(ns)
    if ns.max_frames is not None:
        raise RecogError("--max-frames: only with --stream")
    if video.videos_named(ns.paths):
        return video.cmd_video(ns)
    if ns.vid_stride is not None:
        raise RecogError("--vid-stride: only for videos (.mp4, .mov, .avi, .mkv, .webm, ...)")
    if ns.out is not None and ns.engine == "ray":
        from recog.batch.ray_engine import predict_ray

        summary = predict_ray(
            ns.run, ns.paths, ns.out, batch_size=ns.batch_size, top_k=ns.top_k,
            reject=not ns.no_reject, num_workers=ns.num_workers or 1, address=ns.ray_address,
            device=ns.device, backend=ns.backend, selection=selection(ns),
        )  # fmt: skip
        return _finish(ns.out, summary)
    from recog import api
    from recog.types import Selection

    chosen = Selection(**selection(ns))  # a value out of range: refused before the model loads
    coco_gt = None
    if ns.coco_gt is not None:  # a bad file: refused before the model loads
        from recog.api.results import coco_ids

        coco_gt = coco_ids(ns.coco_gt)
    rec = api.load(ns.run, device=ns.device, backend=ns.backend)
    rec.task.check_selection(chosen)
    if ns.out is not None:
        return _stream(rec, ns)
    _refuse_batch_inputs(ns.paths)
    from recog.data import find_images

    names = [str(f) for f in find_images(list(ns.paths))]
    _refuse_writing_over(ns, names)
    targets = _save_targets(names, ns.save_dir)
    preds = rec.predict(names, batch_size=ns.batch_size, reject=not ns.no_reject, **selection(ns))
    from recog.api.results import refuse_non_finite

    refuse_non_finite(preds)  # a NaN answer is no answer: nothing printed, nothing drawn
    if ns.format == "coco":
        from recog.api.results import coco_json

        print(coco_json(preds, coco_gt))
    else:
        records = [{"path": p.path, **rec.task.to_record(p, top_k=ns.top_k)} for p in preds]
        _print_records(rec, records, ns.format)
    for name, pred in zip(names, preds, strict=True):
        if targets:
            _save_drawn(rec, name, pred, targets[name])
    return 0


def _refuse_batch_inputs(paths: list[str]) -> None:
    """URLs and manifests are read by a batch job only (a file "no such file" was the answer)."""
    from recog.batch.sources import MANIFEST_SUFFIXES, is_url

    for item in paths:
        if is_url(item) or item.lower().endswith(MANIFEST_SUFFIXES):
            raise RecogError(
                f"{item}: a URL or a manifest is read by a batch job; add --out FILE.jsonl "
                f"(or FILE.parquet)"
            )


def _local_roots(paths: list[str]) -> list[Path]:
    """The files and folders on this machine that `paths` read: a glob's folder before its
    first wildcard; URLs are no file here."""
    import glob

    from recog.batch.sources import is_url

    roots = []
    for item in paths:
        if is_url(item):
            continue
        parts = Path(item).parts
        magic = [i for i, part in enumerate(parts) if glob.has_magic(part)]
        roots.append(Path(*parts[: magic[0]]) if magic else Path(item))
    return roots


def _refuse_writing_over(ns: argparse.Namespace, inputs: list[Path] | list[str]) -> None:
    """`--save-dir` and `--out` apart from every input (a drawing once replaced its photo)."""
    for flag, out in (("--save-dir", ns.save_dir), ("--out", ns.out)):
        if out is not None:
            refuse_overlap(out, inputs, flag=flag)


def _save_targets(names: list[str], save_dir: Path | None) -> dict[str, Path]:
    """Each input's drawn file under `save_dir`, mirroring the input tree (none without it).

    A file already there is replaced only when it is an earlier drawing (`_DRAWN`),
    checked for every target before any image is predicted."""
    if save_dir is None:
        return {}
    from recog.api.results import mirrored_paths

    targets = {n: save_dir / rel for n, rel in zip(names, mirrored_paths(names), strict=True)}
    for target in targets.values():
        if (target.exists() or target.is_symlink()) and not _drawn_by_recog(target):
            raise RecogError(
                f"--save-dir {save_dir}: {target} exists and is not a drawing recog made; "
                f"give an empty or new folder"
            )
    return targets


#: the PNG text chunk that marks a drawing as recog's, so a later run may replace it
_DRAWN = ("Software", "recog predict --save-dir")


def _drawn_by_recog(path: Path) -> bool:
    from PIL import Image

    try:  # only the header and text chunks are read, not the pixels
        with Image.open(path) as img:
            return img.format == "PNG" and img.info.get(_DRAWN[0]) == _DRAWN[1]
    except (OSError, ValueError, SyntaxError):  # not an image, or not a PNG PIL can parse
        return False


def _stream(rec: Any, ns: argparse.Namespace) -> int:
    from recog.batch import job_settings, list_inputs, open_sink, predict_stream
    from recog.batch.sources import is_url
    from recog.types import Selection

    inputs = list_inputs(ns.paths)
    _refuse_writing_over(ns, [name for name in inputs if not is_url(name)])
    if ns.format == "coco":
        raise RecogError("--format coco: the boxes print on stdout, without --out")
    rec.selection = Selection(**selection(ns))  # every batch of the job, and its settings
    settings = job_settings(rec, top_k=ns.top_k, batch_size=ns.batch_size, reject=not ns.no_reject)
    sink = open_sink(ns.out, settings, resume=ns.resume, batch_size=ns.batch_size)
    on_batch = None
    if ns.save_dir:
        targets = _save_targets(inputs, ns.save_dir)

        def on_batch(names: list[str], preds: list[Any]) -> None:
            for name, pred in zip(names, preds, strict=True):
                if pred is not None:
                    _save_drawn(rec, name, pred, targets[name])

    summary = predict_stream(
        rec, inputs, sink, batch_size=ns.batch_size, num_workers=ns.num_workers, top_k=ns.top_k,
        reject=not ns.no_reject, on_batch=on_batch,
    )  # fmt: skip
    return _finish(ns.out, summary)


def _finish(out: Path, summary: Any) -> int:
    skipped = f", {summary.skipped} already there" if summary.skipped else ""
    print(
        f"{out}: {summary.images} images in {summary.seconds:.1f} s "
        f"({summary.rate:.0f} img/s){skipped}",
        file=sys.stderr,
    )
    if summary.errors:
        print(
            f"recog: error: {summary.errors} images have no answer; their rows in {out} "
            "hold the reason (column `error`)",
            file=sys.stderr,
        )
        return 1
    return 0


def _print_records(rec: Any, records: list[dict[str, Any]], fmt: str) -> None:
    from recog.api.facet import OUTPUT

    if fmt == "json":
        print(json.dumps(records, indent=1, allow_nan=False))
    elif fmt == "csv":
        rows = [row for r in records for row in OUTPUT.of(rec.task).csv_rows(r)]
        sys.stdout.write(csv_text(rows))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(records)} images, {rec.config.model}")
        table.add_column("image")
        table.add_column("result")
        for r in records:
            table.add_row(r["path"], OUTPUT.of(rec.task).summary(r))
        Console(width=160).print(table)


def _save_drawn(rec: Any, name: str, pred: Any, target: Path) -> None:
    """The drawn image at `target` (PNG) and the task's files beside it (a mask PNG)."""
    from PIL import Image, PngImagePlugin

    from recog.api.facet import OUTPUT
    from recog.batch.sources import read_input
    from recog.io import atomic_write_bytes

    target.parent.mkdir(parents=True, exist_ok=True)
    drawn = rec.task.draw(read_input(name), pred)
    buf = io.BytesIO()
    mark = PngImagePlugin.PngInfo()
    mark.add_text(*_DRAWN)
    Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(buf, format="PNG", pnginfo=mark)
    atomic_write_bytes(target, buf.getvalue())
    OUTPUT.of(rec.task).save(rec.task, pred, target.parent, target.stem)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"predict": cmd_predict}

"""`recog predict RUN clip.mp4 [--vid-stride N]`: per-frame rows on stdout or in `--out`, and the drawn clip.

`recog.cli.predict` hands over when every path is a video (`recog.api.video`
does the work); the rows are printed as a table, JSON or CSV, or written to
`--out` as `.jsonl`, `.json`, `.csv` or `.parquet`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from recog.cli.rows import csv_text
from recog.errors import RecogError

OUT_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def stride(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be 1 (every frame) or more")
    return value


def videos_named(paths: list[str]) -> bool:
    """True when every path is a video; a mix of videos and images is refused."""
    from recog.api.video import is_video

    kinds = {is_video(p) for p in paths}
    if kinds == {True, False}:
        raise RecogError(
            f"{next(p for p in paths if is_video(p))}: videos and images in one command; "
            "predict them separately"
        )
    return kinds == {True}


def cmd_video(ns: argparse.Namespace) -> int:
    from recog import api
    from recog.api.video import predict_video, require_av

    for flag, value in (("--resume", ns.resume), ("--num-workers", ns.num_workers),
                        ("--engine ray", ns.engine == "ray")):  # fmt: skip
        if value not in (None, False):
            raise RecogError(f"{flag}: for image jobs, not videos")
    if ns.out is not None and ns.out.suffix not in OUT_SUFFIXES:
        raise RecogError(f"{ns.out}: video rows go to {', '.join(OUT_SUFFIXES)} files")
    if ns.format == "coco":
        raise RecogError("--format coco: for images (a video's frames have no COCO image ids)")
    from recog.types import Selection

    chosen = Selection(conf=ns.conf, iou=ns.iou, max_det=ns.max_det)
    require_av(ns.paths[0])
    rec = api.load(ns.run, device=ns.device, backend=ns.backend)
    rec.task.check_selection(chosen)
    rec.selection = chosen  # every frame's `predict` keeps what --conf --iou --max-det say
    records: list[dict[str, Any]] = []
    for path in ns.paths:
        records += predict_video(
            rec, path, stride=ns.vid_stride or 1, batch_size=ns.batch_size,
            reject=not ns.no_reject, top_k=ns.top_k, save_dir=ns.save_dir,
        )  # fmt: skip
    if ns.out is not None:
        _write(rec, records, ns.out)
        print(f"{ns.out}: {len(records)} frames", file=sys.stderr)
        return 0
    if ns.format == "table":
        _table(rec, records)
    else:
        sys.stdout.write(_text(rec, records, ns.format))
    return 0


def cmd_stream(ns: argparse.Namespace) -> int:
    """`recog predict RUN SOURCE --stream`: JSONL rows as the frames are predicted."""
    from recog import api
    from recog.api.stream import predict_stream
    from recog.types import Selection

    if len(ns.paths) != 1:
        raise RecogError(f"--stream: one source at a time, got {len(ns.paths)}")
    for flag, value in (("--resume", ns.resume), ("--num-workers", ns.num_workers),
                        ("--engine ray", ns.engine == "ray"), ("--vid-stride", ns.vid_stride)):  # fmt: skip
        if value not in (None, False):
            raise RecogError(f"{flag}: not for --stream (the stream's pace decides the frames)")
    if ns.out is not None and ns.out.suffix != ".jsonl":
        raise RecogError(f"{ns.out}: --stream writes rows as they come, to a .jsonl file")
    if ns.out is not None and ns.out.exists():
        raise RecogError(f"{ns.out}: already exists; --stream never writes over a file")
    if ns.format not in ("table", "json"):
        raise RecogError(f"--format {ns.format}: --stream prints JSON lines")
    chosen = Selection(conf=ns.conf, iou=ns.iou, max_det=ns.max_det)
    from recog.api.video import require_av

    require_av(ns.paths[0])
    rec = api.load(ns.run, device=ns.device, backend=ns.backend)
    rec.task.check_selection(chosen)
    rec.selection = chosen
    sink = open(ns.out, "x", encoding="utf-8") if ns.out is not None else sys.stdout  # noqa: SIM115

    def on_row(row: dict[str, Any]) -> None:
        sink.write(json.dumps(row, allow_nan=False) + "\n")
        sink.flush()

    # Ctrl-C is how a live stream ends: it stops the loop, and the rows and drawn clip so far
    # are kept (a second Ctrl-C interrupts at once)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: _stop_once(stop, previous))
    try:
        summary = predict_stream(
            rec, ns.paths[0], on_row=on_row, reject=not ns.no_reject, top_k=ns.top_k,
            save_dir=ns.save_dir, max_frames=ns.max_frames, stop=stop,
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
        if sink is not sys.stdout:
            sink.close()
    print(summary.line(), file=sys.stderr)
    return 0


def _stop_once(stop: threading.Event, previous: Any) -> None:
    if stop.is_set():
        signal.signal(signal.SIGINT, previous)
        raise KeyboardInterrupt
    print("stopping the stream (Ctrl-C again to interrupt at once)", file=sys.stderr)
    stop.set()


def _csv_rows(rec: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The task's CSV rows of each frame, led by its file, frame index and time."""
    from recog.api.facet import OUTPUT

    rows = []
    for r in records:
        lead = {"path": r["path"], "frame": r["frame"], "time_s": r["time_s"]}
        rows += [{**lead, **row} for row in OUTPUT.of(rec.task).csv_rows(r)]
    return rows


def _text(rec: Any, records: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(records, indent=1) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in records)
    return csv_text(_csv_rows(rec, records))


def _write(rec: Any, records: list[dict[str, Any]], out: Path) -> None:
    from recog.io import atomic_write, atomic_write_text

    if out.suffix != ".parquet":
        atomic_write_text(out, _text(rec, records, out.suffix[1:]))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(_csv_rows(rec, records))
    atomic_write(out, lambda tmp: pq.write_table(table, tmp))


def _table(rec: Any, records: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from recog.api.facet import OUTPUT

    output = OUTPUT.of(rec.task)
    table = Table(title=f"{len(records)} frames, {rec.config.model}")
    for column in ("video", "frame", "time s", "result"):
        table.add_column(column)
    for r in records:
        shown = {k: v for k, v in r.items() if k not in ("frame", "time_s")}
        table.add_row(r["path"], str(r["frame"]), f"{r['time_s']:.3f}", output.summary(shown))
    Console(width=160).print(table)

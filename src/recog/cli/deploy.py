"""`recog export` and `recog bench`: portable files and how fast they run.

Parsing only, as in `recog.cli`; `export` calls `recog.deploy.run.export_run`,
`bench` calls `recog.deploy.bench.bench` (both import torch only when they run).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

#: recog.deploy.export.FORMATS, written out so `--help` imports no torch (a test keeps them equal)
FORMATS = ("onnx", "openvino", "torchscript")
BACKENDS = ("torch", "onnx", "openvino")
#: recog.deploy.bench.BACKEND_ROWS, written out likewise
BENCH_BACKENDS = ("torch", "torch-channels-last", "torch-compile", "onnxruntime",
                  "onnxruntime-int8", "openvino", "openvino-int8")  # fmt: skip


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="a portable model file (ONNX, OpenVINO, TorchScript), checked against the run",
    )
    p.add_argument("run", type=Path)
    p.add_argument("--format", choices=FORMATS, default="onnx", dest="fmt")
    p.add_argument("--int8", action="store_true",
                   help="int8, calibrated on training images: onnxruntime static QDQ per-channel (--format onnx), NNCF (--format openvino)")  # fmt: skip
    p.add_argument("--max-drop", type=float, default=0.01,
                   help="int8: the most the main metric may fall; layers stay in float until it holds (default 0.01)")  # fmt: skip
    p.add_argument("--calibration-images", type=int, default=64,
                   help="int8: training images to calibrate on (default 64)")  # fmt: skip
    p.add_argument("--dynamic-batch", action=argparse.BooleanOptionalAction, default=None,
                   help="a dynamic batch axis (default: on wherever the graph allows; "
                        "torchvision's R-CNNs take one image at a time)")  # fmt: skip
    p.add_argument("--opset", type=int, help="ONNX opset (default 18; onnx and openvino only)")
    p.add_argument("--out", type=Path,
                   help="file to write (default RUN/export/model[-int8].onnx, .xml or "
                        "model.torchscript)")  # fmt: skip
    add_bench_parser(sub)


def cmd_export(ns: argparse.Namespace) -> int:
    from recog import api
    from recog.deploy.run import EXPORT_JSON, export_run
    from recog.errors import RecogError

    if not 0 <= ns.max_drop <= 1:
        raise RecogError(f"--max-drop {ns.max_drop}: must be in [0, 1]")
    if ns.calibration_images < 1:
        raise RecogError(f"--calibration-images {ns.calibration_images}: must be at least 1")
    if ns.opset is not None and ns.fmt == "torchscript":
        raise RecogError("--opset: an ONNX setting; --format torchscript has none")
    opset = 18 if ns.opset is None else ns.opset  # recog.deploy.export.DEFAULT_OPSET
    if not 13 <= opset <= 23:
        raise RecogError(f"--opset {opset}: recog exports opsets 13 to 23")
    rec = api.load(ns.run, device="cpu")
    record = export_run(
        rec, fmt=ns.fmt, int8=ns.int8, out=ns.out, dynamic_batch=ns.dynamic_batch,
        opset=opset, max_drop=ns.max_drop, calibration_images=ns.calibration_images,
    )  # fmt: skip
    dest = ns.out or (ns.run / "export" / record["file"])
    metric = record["metric"]
    line = (f"{metric} {record['before']:.4f} -> {record['after']:.4f}, max |diff| "
            f"{record['max_abs_diff']:.2e}")  # fmt: skip
    if record.get("outputs_of_another_length"):
        line += (f" (over outputs of equal length; {record['outputs_of_another_length']:.0f} of "
                 f"{record['images_compared']:.0f} images kept another number of detections)")  # fmt: skip
    if "top1_agreement" in record:
        line += f", top-1 agreement {record['top1_agreement']:.3f}"
    if record.get("kept_float"):
        line += f", {len(record['kept_float'])} layers kept in float"
    print(f"exported: {dest} ({record['size_bytes'] / 1e6:.2f} MB, {record['seconds']:.1f} s)")
    print(f"parity on {record['val_images']} validation images: {line}")
    print(f"record: {Path(dest).parent / EXPORT_JSON}")
    return 0


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="latency, throughput, FLOPs and size per backend, beside this machine's limit"
    )
    p.add_argument("run", type=Path,
                   help="a run directory (every backend) or an exported file (its runtimes)")  # fmt: skip
    p.add_argument("--batch", default="1,8,32", help="batch sizes for throughput (default 1,8,32)")
    p.add_argument("--img-size", type=int, help="input side (default: the run's)")
    p.add_argument("--backends", default=",".join(BENCH_BACKENDS),
                   help=f"comma-separated, of {', '.join(BENCH_BACKENDS)} (default all)")  # fmt: skip
    p.add_argument("--out", type=Path, help="where bench.json and bench.png go (default RUN/bench)")


def cmd_bench(ns: argparse.Namespace) -> int:
    from recog import api
    from recog.deploy.bench import bench, write_bench
    from recog.deploy.facet import EXPORT
    from recog.errors import RecogError

    try:
        batches = tuple(sorted({int(b) for b in str(ns.batch).split(",") if b.strip()}))
    except ValueError:
        raise RecogError(f"--batch {ns.batch}: give batch sizes such as 1,8,32") from None
    if not batches or min(batches) < 1 or max(batches) > 1024:
        raise RecogError(f"--batch {ns.batch}: sizes from 1 to 1024")
    backends = tuple(b.strip() for b in str(ns.backends).split(",") if b.strip())
    unknown = [b for b in backends if b not in BENCH_BACKENDS]
    if unknown or not backends:
        raise RecogError(f"--backends: {unknown[0] if unknown else 'none'} is not one of "
                         f"{', '.join(BENCH_BACKENDS)}")  # fmt: skip
    if ns.img_size is not None and not 16 <= ns.img_size <= 4096:
        raise RecogError(f"--img-size {ns.img_size}: from 16 to 4096")
    if not ns.run.is_dir() and ns.backends == ",".join(BENCH_BACKENDS):
        # an exported file: its own runtimes (an .xml is OpenVINO's alone)
        backends = ("openvino",) if ns.run.suffix == ".xml" else ("onnxruntime", "openvino")
    rec = api.load(ns.run, device="cpu")
    if ns.img_size is not None and not EXPORT.of(rec.task).keeps_image_size and ns.img_size % 32:
        raise RecogError(f"--img-size {ns.img_size}: must be a multiple of 32")
    record = bench(rec, batches=batches, img_size=ns.img_size, backends=backends,
                   progress=lambda b: print(f"timing {b} ...", flush=True))  # fmt: skip
    out = ns.out or ((ns.run if ns.run.is_dir() else ns.run.parent) / "bench")
    paths = write_bench(record, out)
    _print_bench(record)
    print(f"bench: {paths[0]}  plot: {paths[1]}")
    return 0


def _print_bench(record: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=(f"{record['model']} at {record['img_size']} px: {record['params'] / 1e6:.2f} M "
                         f"parameters, {record['flops_per_image'] / 1e9:.2f} GFLOP per image, "
                         f"matmul {record['peak_gflops']:.0f} GFLOP/s"))  # fmt: skip
    for column in ("backend", "batch", "images/s", "p50 ms", "p95 ms", "GFLOP/s", "x torch"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    base = {
        r["batch"]: r.get("images_per_second") for r in record["rows"] if r["backend"] == "torch"
    }
    for r in record["rows"]:
        if "error" in r:
            table.add_row(
                r["backend"], str(r["batch"]), f"error: {r['error'][:60]}", "", "", "", ""
            )
            continue
        ratio = r["images_per_second"] / base[r["batch"]] if base.get(r["batch"]) else None
        table.add_row(
            r["backend"], str(r["batch"]), f"{r['images_per_second']:.1f}",
            f"{r.get('latency_ms_p50', ''):}", f"{r.get('latency_ms_p95', ''):}",
            f"{r['gflops']:.1f}", "" if ratio is None else f"{ratio:.2f}x",
        )  # fmt: skip
    Console(width=140).print(table)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "export": cmd_export,
    "bench": cmd_bench,
}

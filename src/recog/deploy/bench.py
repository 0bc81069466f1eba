"""`recog bench`: what a model costs and how fast each backend runs it, beside this machine's limit.

Every backend runs the same computation, the export cut behind the run's
normalization (`recog.deploy.graph.PixelGraph`; YOLO's NMS, which runs after every
backend alike, is left out; an R-CNN's graph holds its NMS and takes one image, so a
batch runs image by image), on the same uint8 images:
- `torch` (eager, NCHW: how `recog predict` ran before this module),
  `torch-channels-last`, `torch-compile` (inductor; a failure is a row with its error);
- `onnxruntime` (the run's checked `export/model.onnx`, else a fresh export) and
  `onnxruntime-int8` (`export/model-int8.onnx`, else a fresh, unchecked quantization on
  16 training images: its accuracy is `recog export --int8`'s job), `openvino` and
  `openvino-int8` (NNCF: `export/model-int8.xml`, else a fresh one on 16 images).

Per backend: latency p50/p95 at batch 1, and images/s at each `batches` size (median
of the timed repeats).  `gflops` is the model's FLOPs per image (PyTorch's
`FlopCounterMode`, a multiply-add counted as 2) times images/s; `peak_gflops` is this
machine's fp32 matrix-multiply rate measured by the same command (torch.mm of 2048^2
matrices on all its threads).  It is an effective ceiling, not a hardware one:
Winograd convolutions, int8 kernels and fused operators can pass it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recog.deploy.backend import first_line
from recog.deploy.facet import EXPORT
from recog.deploy.graph import TrainedRun
from recog.errors import RecogError

#: seconds of timed repeats per backend and batch (at least `repeats` runs)
DEFAULT_BUDGET_S = 3.0
BACKEND_ROWS = ("torch", "torch-channels-last", "torch-compile", "onnxruntime",
                "onnxruntime-int8", "openvino", "openvino-int8")  # fmt: skip


def peak_gflops(n: int = 2048, seconds: float = 1.0) -> float:
    """fp32 matrix-multiply GFLOP/s of this machine (best of the timed repeats)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, spent = float("inf"), 0.0
    while spent < seconds:
        start = time.perf_counter()
        torch.mm(a, b)
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return 2 * n**3 / best / 1e9


def flops_per_image(module: torch.nn.Module, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        module(torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8))
    return float(counter.get_total_flops())


def _timed(run: Callable[[], Any], *, repeats: int, budget_s: float) -> list[float]:
    for _ in range(2):  # warm-up: first calls allocate, compile, pick kernels
        run()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats or (time.perf_counter() < deadline and len(times) < 5 * repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        if time.perf_counter() > deadline and len(times) >= 3:
            break
    return times


def _torch_runner(graph: torch.nn.Module, kind: str) -> Callable[[torch.Tensor], Any]:
    model = copy.deepcopy(graph).eval()
    if kind == "torch-channels-last":
        model = model.to(memory_format=torch.channels_last)
    if kind == "torch-compile":
        model = torch.compile(model)

    def run(images: torch.Tensor) -> Any:
        if kind != "torch":
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return model(images)

    return run


def _session_runner(path: Path, backend: str) -> Callable[[torch.Tensor], Any]:
    from recog.deploy.backend import Session

    session = Session(path, backend, spinning=True)
    return lambda images: session.run(images.numpy())


def _files(rec: TrainedRun, work: Path, size: int, backends: set[str]) -> dict[str, Path]:
    """The files to time for `backends`: the run's checked exports, else (none, or another
    input size than the run's fixed one) fresh ones in `work`."""
    from recog.deploy.export import write_onnx
    from recog.deploy.quantize import pre_process, quantize_int8, quantize_openvino_int8
    from recog.deploy.run import calibration_batches

    export = rec.run_dir / "export"
    if size != rec.img_size and not EXPORT.of(rec.task).keeps_image_size:
        export = work  # the run's files take only its own size
    fp32 = export / "model.onnx"
    if not fp32.is_file():
        fp32 = write_onnx(rec, work / "model.onnx", img_size=size)
    files = {"onnxruntime": fp32, "openvino": fp32}
    calibration: list = []  # read once, for whichever int8 file has to be made
    if "onnxruntime-int8" in backends:
        files["onnxruntime-int8"] = export / "model-int8.onnx"
        if not files["onnxruntime-int8"].is_file():
            files["onnxruntime-int8"] = work / "model-int8.onnx"
            pre = pre_process(fp32, work / "pre.onnx")
            calibration = calibration or calibration_batches(rec, 16, size=size)
            quantize_int8(pre, files["onnxruntime-int8"], calibration, metadata_from=fp32)
    if "openvino-int8" in backends:
        files["openvino-int8"] = export / "model-int8.xml"
        if not files["openvino-int8"].is_file():
            files["openvino-int8"] = work / "model-int8.xml"
            calibration = calibration or calibration_batches(rec, 16, size=size)
            quantize_openvino_int8(fp32, files["openvino-int8"], calibration)
    return files


def _architecture(rec: TrainedRun) -> TrainedRun:
    """`rec` with a freshly built torch model of its architecture (for counting only)."""
    from recog.models.factory import create_model

    shell = copy.copy(rec)
    shell.model = create_model(str(rec.config.model), num_classes=len(rec.class_names),
                               img_size=rec.img_size, **rec.config.model_args).eval()  # fmt: skip
    return shell


def bench(
    rec: TrainedRun,
    *,
    batches: tuple[int, ...] = (1, 8, 32),
    img_size: int | None = None,
    backends: tuple[str, ...] = BACKEND_ROWS,
    repeats: int = 10,
    budget_s: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The bench record (module docstring); `img_size` defaults to the run's."""
    from recog.deploy.export import pixel_graph

    size = int(img_size or rec.img_size)
    budget_s = DEFAULT_BUDGET_S if budget_s is None else budget_s
    exported = getattr(rec.model, "exported", False)
    if exported:
        # an exported file: its own runtimes only, at its own size; the FLOPs and parameters
        # are the architecture's, counted on a freshly built model (weights change neither)
        if not set(backends) <= {"onnxruntime", "openvino"}:
            raise RecogError(f"{rec.model.session.path}: an exported file is timed on "
                             "onnxruntime and openvino; torch rows need the run directory")  # fmt: skip
        if size != rec.img_size and not EXPORT.of(rec.task).keeps_image_size:
            raise RecogError(f"--img-size {size}: this file takes {rec.img_size} px only")
    graph, parts = pixel_graph(_architecture(rec) if exported else rec)
    flops = flops_per_image(graph, size)
    params = sum(p.numel() for p in graph.parameters())
    peak = peak_gflops()
    rows: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}
    weights = rec.run_dir / "model.safetensors"
    if weights.is_file():
        sizes["safetensors"] = weights.stat().st_size
    with tempfile.TemporaryDirectory(prefix="recog-bench-") as tmp:
        if exported:
            files = {b: rec.model.session.path for b in ("onnxruntime", "openvino")}
        elif set(backends) - {"torch", "torch-channels-last", "torch-compile"}:
            files = _files(rec, Path(tmp), size, set(backends))
        else:
            files = {}
        sizes.update({f"onnx{'-int8' if k.endswith('int8') else ''}": p.stat().st_size
                      for k, p in files.items() if k.startswith("onnx")})  # fmt: skip
        if "openvino-int8" in files:
            xml = files["openvino-int8"]
            sizes["openvino-int8"] = xml.stat().st_size + xml.with_suffix(".bin").stat().st_size
        for backend in backends:
            if progress:
                progress(backend)
            rows += _rows(backend, graph, files, batches, size, flops, repeats, budget_s,
                          per_image=parts.per_image)  # fmt: skip
    return {
        "model": str(rec.config.model),
        "task": rec.task.name,
        "img_size": size,
        "params": params,
        "flops_per_image": flops,
        "size_bytes": sizes,
        "peak_gflops": round(peak, 1),
        "threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "versions": _versions(),
        "rows": rows,
    }


def _rows(backend: str, graph: torch.nn.Module, files: dict[str, Path], batches: tuple[int, ...],
          size: int, flops: float, repeats: int, budget_s: float,
          per_image: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    try:
        if backend.startswith("torch"):
            one = _torch_runner(graph, backend)
        else:
            runtime = "openvino" if backend.startswith("openvino") else "onnx"
            one = _session_runner(files[backend], runtime)
    except (RecogError, RuntimeError) as exc:
        return [{"backend": backend, "batch": b, "error": str(exc)[:200]} for b in batches]
    # a graph of one image (torchvision's R-CNNs) runs a batch image by image, as predicting does
    run = (lambda images: [one(x) for x in images.split(1)]) if per_image else one
    out = []
    for b in sorted({1, *batches}):
        images = torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8)
        try:
            times = _timed(lambda im=images: run(im), repeats=repeats, budget_s=budget_s)
        except Exception as exc:  # noqa: BLE001 - inductor or a runtime failing is a measured result
            out.append({"backend": backend, "batch": b, "error": first_line(exc)})
            continue
        median = statistics.median(times)
        row: dict[str, Any] = {
            "backend": backend,
            "batch": b,
            "images_per_second": round(b / median, 2),
            "gflops": round(flops * b / median / 1e9, 2),
            "repeats": len(times),
        }
        if b == 1:
            row["latency_ms_p50"] = round(1000 * median, 3)
            row["latency_ms_p95"] = round(1000 * float(np.percentile(times, 95)), 3)
        out.append(row)  # batch 1 is always timed: it gives the latency
    return out


def _versions() -> dict[str, str]:
    import torchvision

    out = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    for name in ("onnxruntime", "openvino", "onnx"):
        with contextlib.suppress(ImportError):
            out[name] = __import__(name).__version__
    return out


def write_bench(record: dict[str, Any], out_dir: Path) -> list[Path]:
    """bench.json and bench.png in `out_dir`."""
    from recog.io import atomic_write_text
    from recog.report.plots import bench_plot

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "bench.json", json.dumps(record, indent=2) + "\n")
    bench_plot(record, out_dir / "bench.png")
    return [out_dir / "bench.json", out_dir / "bench.png"]

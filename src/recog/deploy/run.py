"""`recog export`: write the file, check it against the torch model, keep it only if it passes.

Every export is written into a temporary folder beside its destination, checked by
`recog.deploy.parity` on the run's validation split, and only then moved into place
with `export.json` beside it; a failed check leaves nothing behind but the message.

int8 (`--int8`) quantizes the checked fp32 ONNX graph (`recog.deploy.quantize`:
onnxruntime's static QDQ for `--format onnx`, NNCF for `--format openvino`) on
`calibration_images` training images, seen as evaluation sees them where the task
can (the confidence facet's `load_reference`), else the training split as loaded.  With `max_drop`,
the search is accuracy-controlled: when the metric falls more than that, the
weighted layers are kept in float in this order until it does not: the last one
(the classifier or the head's output), the first one (the stem, which sees raw
pixels), both, then the last quarter and the last half of the network (the layers
nearest the output change the answer most directly); each try costs one quantization
and one validation pass.  The record says what was kept.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from recog.confidence.facet import CONFIDENCE
from recog.deploy import parity
from recog.deploy.backend import ExportedModel
from recog.deploy.export import (
    DEFAULT_OPSET,
    FORMATS,
    batch_is_dynamic,
    write_onnx,
    write_openvino,
    write_torchscript,
)
from recog.deploy.facet import EXPORT
from recog.deploy.graph import TrainedRun
from recog.deploy.quantize import (
    ov_weighted_nodes,
    pre_process,
    quantize_int8,
    quantize_openvino_int8,
    weighted_nodes,
)
from recog.errors import RecogError
from recog.io import atomic_write_text, read_json

EXPORT_JSON = "export.json"
#: the fp32 file's metric may not fall more than this (float reordering flips no answer)
FP32_TOLERANCE = 0.005


SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "torchscript": ".torchscript"}


def default_path(rec: TrainedRun, fmt: str, int8: bool) -> Path:
    suffix = SUFFIXES[fmt]
    return rec.run_dir / "export" / f"model{'-int8' if int8 else ''}{suffix}"


def calibration_batches(
    rec: TrainedRun, count: int, *, size: int | None = None
) -> list[np.ndarray]:
    """`count` training images (evenly spread over the split), uint8, batches of one size;
    `size` resizes them for a graph made at another input size than the run's (bench)."""
    task_cls = type(rec.task)
    dataset: Dataset = (
        CONFIDENCE.of(task_cls).load_reference(rec.config)
        if CONFIDENCE.has(task_cls)
        else task_cls.data.splits(rec.config).train
    )
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise RecogError(f"{rec.config.data}: no training images to calibrate int8 on")
    picks = np.linspace(0, n - 1, num=min(count, n)).round().astype(int)
    tensors = [dataset[int(i)].image for i in dict.fromkeys(picks.tolist())]
    own_size = EXPORT.of(rec.task).keeps_image_size
    if size is not None and size != rec.img_size and not own_size:
        from torchvision.transforms.v2.functional import resize

        tensors = [resize(t, [size, size], antialias=True) for t in tensors]
    images = [t.numpy() for t in tensors]
    # images of their own sizes, or a graph that takes one image: batches of one
    batch = 1 if own_size or not batch_is_dynamic(rec, None) else 8
    return [np.stack(images[i : i + batch]) for i in range(0, len(images), batch)]


def exclusion_plan(nodes: list[str]) -> list[list[str]]:
    """The float-kept sets the accuracy-controlled search tries, in order (module docstring)."""
    if not nodes:
        return []
    n = len(nodes)
    plans = [[nodes[-1]], [nodes[0]], [nodes[0], nodes[-1]],
             nodes[-max(1, n // 4):], nodes[-max(1, n // 2):]]  # fmt: skip
    unique: list[list[str]] = []
    for plan in (list(dict.fromkeys(p)) for p in plans):
        if plan not in unique:
            unique.append(plan)
    return unique


def _int8(
    rec: TrainedRun,
    fp32: Path,
    out: Path,
    val: Dataset,
    before: dict[str, float],
    *,
    fmt: str,
    max_drop: float,
    calibration_images: int,
) -> dict[str, Any]:
    batches = calibration_batches(rec, calibration_images)
    if fmt == "openvino":  # NNCF on the IR OpenVINO converts from the ONNX file
        nodes = ov_weighted_nodes(fp32)

        def quantize(keep: list[str]) -> str:
            return quantize_openvino_int8(fp32, out, batches, exclude=keep)
    else:  # onnxruntime's tools on its pre-processed graph (node names are that graph's)
        pre = pre_process(fp32, out.with_name("pre.onnx"))
        nodes = weighted_nodes(pre)

        def quantize(keep: list[str]) -> str:
            return quantize_int8(pre, out, batches, metadata_from=fp32, exclude=keep)

    backend = "openvino" if fmt == "openvino" else "onnx"
    tries: list[dict[str, Any]] = []
    for keep in [[], *exclusion_plan(nodes)]:
        kind = quantize(keep)
        try:
            record = parity.check_parity(
                rec, ExportedModel(out, backend), val, tolerance=max_drop, before=before
            )
        except parity.ParityError as exc:
            tries.append({"kept_float": keep, "after": exc.record["after"]})
            continue
        return {**record, "quantization": kind, "calibration_images": sum(map(len, batches)),
                "kept_float": keep, "tries": tries}  # fmt: skip
    out.unlink(missing_ok=True)
    best = max(tries, key=lambda t: t["after"]) if tries else {"after": float("nan")}
    metric = str(rec.task.scores.primary)
    raise RecogError(
        f"{rec.run_dir}: no int8 model keeps {metric} within {max_drop} of "
        f"{before[metric]:.4f} (best {best['after']:.4f}, keeping "
        f"{len(best.get('kept_float', []))} layers in float); export fp32 or raise --max-drop"
    )


def export_run(
    rec: TrainedRun,
    *,
    fmt: str = "onnx",
    int8: bool = False,
    out: Path | None = None,
    dynamic_batch: bool | None = None,
    opset: int = DEFAULT_OPSET,
    max_drop: float = 0.01,
    calibration_images: int = 64,
) -> dict[str, Any]:
    """Export, check, then keep (see the module docstring); returns the file's record."""
    if fmt not in FORMATS:
        raise RecogError(f"--format {fmt}: not one of {', '.join(FORMATS)}")
    if int8 and fmt == "torchscript":
        raise RecogError("--int8: onnx (onnxruntime) or openvino (NNCF); not torchscript")
    dest = Path(out) if out is not None else default_path(rec, fmt, int8)
    if dest.is_dir():
        raise RecogError(f"{dest}: is a folder; --out takes a file name")
    if out is not None:
        check_export_out(rec, dest, fmt)
    dynamic_batch = batch_is_dynamic(rec, dynamic_batch)
    start = time.perf_counter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    val = rec.task.data.splits(rec.config).val
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".export-") as tmp:
        work = Path(tmp)
        before = parity.metric_of(rec, rec.model, val)
        if fmt == "torchscript":
            made = write_torchscript(rec, work / "model.torchscript", dynamic_batch=dynamic_batch)
            exported = ExportedModel(made, "torchscript")
        else:
            made = write_onnx(rec, work / "model.onnx", dynamic_batch=dynamic_batch, opset=opset)
            exported = ExportedModel(made)
        fp32 = made
        record = parity.check_parity(rec, exported, val, tolerance=FP32_TOLERANCE, before=before)
        if int8:
            made = work / f"model-int8{'.xml' if fmt == 'openvino' else '.onnx'}"
            record = _int8(rec, fp32, made, val, before, fmt=fmt, max_drop=max_drop,
                           calibration_images=calibration_images)  # fmt: skip
        elif fmt == "openvino":
            made = write_openvino(fp32, work / "model.xml")
            record = parity.check_parity(
                rec, ExportedModel(made, "openvino"), val, tolerance=FP32_TOLERANCE, before=before
            )
        record = {
            "file": dest.name,
            "format": fmt,
            "int8": int8,
            "opset": None if fmt == "torchscript" else opset,
            "dynamic_batch": dynamic_batch,
            **record,
            "size_bytes": made.stat().st_size
            + (made.with_suffix(".bin").stat().st_size if fmt == "openvino" else 0),
            "seconds": round(time.perf_counter() - start, 2),
        }
        if fmt == "openvino":
            os.replace(made.with_suffix(".bin"), dest.with_suffix(".bin"))
        os.replace(made, dest)
    _write_record(dest.parent / EXPORT_JSON, record)
    return record


def check_export_out(rec: TrainedRun, dest: Path, fmt: str) -> None:
    """A file the user names is never one recog did not write (a photo, a run's weights):
    inside the run folder only under its `export/`; an existing file only where the
    folder's export.json records it as an earlier export."""
    run = Path(rec.run_dir).resolve()
    where = dest.resolve()
    if where.is_relative_to(run) and not where.is_relative_to(run / "export"):
        raise RecogError(
            f"{dest}: inside the run folder {rec.run_dir}, whose files are the run's own; "
            f"export into {Path(rec.run_dir) / 'export'} or outside the run"
        )
    ours: set[str] = set()
    record = dest.parent / EXPORT_JSON
    if record.is_file():
        with contextlib.suppress(RecogError, AttributeError, TypeError):
            ours = set(read_json(record).get("files", {}))
    for path in (dest, dest.with_suffix(".bin")) if fmt == "openvino" else (dest,):
        if (path.exists() or path.is_symlink()) and dest.name not in ours:
            raise RecogError(
                f"{path}: exists and is not a file recog exported there; give a new file name"
            )


def _write_record(path: Path, record: dict[str, Any]) -> None:
    """export.json: the latest export's record at the top, every file's under `files`."""
    files: dict[str, Any] = {}
    if path.is_file():
        with contextlib.suppress(RecogError, AttributeError, TypeError):
            files = dict(read_json(path).get("files", {}))
    files[record["file"]] = record
    import json

    atomic_write_text(path, json.dumps({**record, "files": files}, indent=2) + "\n")

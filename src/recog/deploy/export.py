"""Writing an exported model: the pixel graph to ONNX (torch.onnx) or OpenVINO IR, with recog's metadata.

The graph is `recog.deploy.graph.PixelGraph` (uint8 pixels in, the model's export
cut out), written by the exporter the model's cut names (`ExportParts.exporter`):
torch.onnx's dynamo exporter (torch.export) for every model whose sizes do not
depend on the data, its TorchScript-based one for torchvision's R-CNNs (why:
`recog.models.detect`).  The batch axis is dynamic unless `dynamic_batch=False` or
the graph takes one image (`ExportParts.per_image`); the spatial axes are dynamic
for tasks whose `prepare` keeps each image's size (segmentation), fixed at the run's
input size otherwise.  Metadata (`recog.deploy.backend.META_KEYS`): the
task, model name, classes, input size, normalization, output names, the step after
the graph and its thresholds, the run's whole resolved config and recog's version, so
`recog.load(FILE)` rebuilds the task without the run directory.

OpenVINO IR is converted from the ONNX file (`openvino.convert_model`), the route
OpenVINO documents for PyTorch models, so both formats hold the same graph.
TorchScript (`write_torchscript`) traces the same pixel graph, for LibTorch and
`torch.jit.load` users; recog itself opens one only to check the file it has just
written (a TorchScript archive holds code: `recog.api.exported` refuses one).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from recog.deploy.backend import TORCHSCRIPT_META, first_line, require
from recog.deploy.facet import EXPORT
from recog.deploy.graph import PixelGraph, TrainedRun
from recog.errors import RecogError
from recog.io import atomic_write
from recog.models.export_parts import ExportParts, export_parts
from recog.version import __version__
from recog.yaml_text import dump_yaml

FORMATS = ("onnx", "openvino", "torchscript")
DEFAULT_OPSET = 18


def metadata(rec: TrainedRun, parts: ExportParts) -> dict[str, str]:
    """Everything a file needs to predict without its run directory, as strings."""
    return {
        "recog_version": __version__,
        "task": rec.task.name,
        "model": str(rec.config.model),
        "classes": json.dumps(rec.class_names),
        "img_size": str(rec.img_size),
        "mean": json.dumps([float(v) for v in rec.task.mean.flatten()]),
        "std": json.dumps([float(v) for v in rec.task.std.flatten()]),
        "outputs": json.dumps(list(parts.outputs)),
        "finish": parts.finish,
        "finish_args": json.dumps(parts.finish_args),
        "config": dump_yaml(rec.config.to_dict()),
    }


def pixel_graph(rec: TrainedRun) -> tuple[PixelGraph, ExportParts]:
    """The run's model (a CPU copy) behind its normalization."""
    model = copy.deepcopy(rec.model).cpu().eval()
    parts = export_parts(model, str(rec.config.model))
    return PixelGraph(
        parts, rec.task.mean.flatten().tolist(), rec.task.std.flatten().tolist()
    ).eval(), parts


def batch_is_dynamic(rec: TrainedRun, asked: bool | None) -> bool:
    """Whether the file gets a dynamic batch axis: as asked (None: wherever the graph
    allows); asked of a graph that takes one image at a time, refused in one line."""
    # a model's export_parts() only wraps it (no copy needed to read the flag)
    per_image = export_parts(rec.model, str(rec.config.model)).per_image
    if asked and per_image:
        raise RecogError(
            f"--dynamic-batch: {rec.config.model}'s graph takes one image at a time "
            "(recog runs a batch image by image); export it without the flag"
        )
    return not per_image if asked is None else asked


def write_onnx(
    rec: TrainedRun,
    out: Path,
    *,
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
    img_size: int | None = None,
) -> Path:
    """The run as an ONNX file at `out` (written atomically); `img_size` other than the
    run's is for `recog bench` (the metadata keeps the run's).  A graph that takes one
    image (`ExportParts.per_image`) has a batch of one whatever `dynamic_batch` says."""
    require("onnx", "onnx")  # before any work: a missing extra is one line
    graph, parts = pixel_graph(rec)
    if parts.exporter == "torchscript":
        return _write_traced_onnx(rec, graph, parts, out, opset=opset, img_size=img_size)
    require("onnxscript", "onnx")  # the dynamo exporter's op library
    size = int(img_size or rec.img_size)
    # a dynamic batch is traced at 2 (torch.export specializes a size of 1); a static one is 1
    example = torch.randint(0, 256, (2 if dynamic_batch else 1, 3, size, size), dtype=torch.uint8)
    axes: dict[int, Any] = {}
    if dynamic_batch:
        axes[0] = torch.export.Dim("batch", min=1, max=4096)
    if EXPORT.of(rec.task).keeps_image_size:
        stride = 32  # the segmenters pad to it; any size the task hands them passes
        axes[2] = torch.export.Dim("height", min=stride, max=16384)
        axes[3] = torch.export.Dim("width", min=stride, max=16384)

    def write(tmp: str) -> None:
        # the exporter narrates to stdout and warns about internals; a command prints its own line
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                program = torch.onnx.export(
                    graph,
                    (example,),
                    input_names=["images"],
                    output_names=list(parts.outputs),
                    dynamic_shapes={"images": axes} if axes else None,
                    dynamo=True,
                    opset_version=opset,
                    verbose=False,
                )
            except Exception as exc:  # torch.export / onnxscript raise many kinds
                raise RecogError(
                    f"{rec.config.model}: the ONNX exporter failed ({first_line(exc)})"
                ) from None
        _save_onnx(program.model_proto, metadata(rec, parts), tmp)

    atomic_write(out, write)
    return out


def _save_onnx(proto: Any, meta: dict[str, str], path: str) -> None:
    """An ONNX model saved at `path` with recog's metadata in its `metadata_props`."""
    onnx = require("onnx", "onnx")
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, path)


def _write_traced_onnx(
    rec: TrainedRun,
    graph: PixelGraph,
    parts: ExportParts,
    out: Path,
    *,
    opset: int,
    img_size: int | None,
) -> Path:
    """The graph through torch.onnx's TorchScript-based exporter, traced on one image
    (its outputs' lengths stay dynamic: they are the number of detections)."""
    onnx = require("onnx", "onnx")
    size = int(img_size or rec.img_size)
    example = torch.rand(1, 3, size, size).mul(255).to(torch.uint8)

    def write(tmp: str) -> None:
        buffer = io.BytesIO()
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # the tracer warns at every data-dependent branch torchvision marks as traced
            warnings.simplefilter("ignore")
            try:
                with torch.inference_mode(False), torch.no_grad():
                    torch.onnx.export(
                        graph,
                        (example,),
                        buffer,
                        input_names=["images"],
                        output_names=list(parts.outputs),
                        dynamo=False,
                        opset_version=opset,
                    )
            except Exception as exc:  # the tracer and the symbolic functions raise many kinds
                raise RecogError(
                    f"{rec.config.model}: the ONNX exporter failed ({first_line(exc)})"
                ) from None
        _save_onnx(onnx.load_from_string(buffer.getvalue()), metadata(rec, parts), tmp)

    atomic_write(out, write)
    return out


def write_torchscript(rec: TrainedRun, out: Path, *, dynamic_batch: bool = True) -> Path:
    """The run's pixel graph traced to TorchScript (`torch.jit.trace`), recog's metadata in
    the archive's extra files: for LibTorch and `torch.jit.load` users.  Traced at batch 2
    where the batch is dynamic; tracing keeps the batch and (for segmentation) the spatial
    sizes symbolic in every registered model's graph (the parity check runs other sizes)."""
    graph, parts = pixel_graph(rec)
    batch = 2 if dynamic_batch and not parts.per_image else 1
    size = int(rec.img_size)
    example = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)

    def write(tmp: str) -> None:
        # the tracer warns at every Python-side branch, and torch calls TorchScript
        # deprecated (torch.export's programs do not run in LibTorch without Python yet)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with torch.no_grad():
                    traced = torch.jit.trace(graph, (example,), check_trace=False)
            except Exception as exc:  # the tracer raises many kinds
                raise RecogError(
                    f"{rec.config.model}: the TorchScript tracer failed ({first_line(exc)})"
                ) from None
            extra = {TORCHSCRIPT_META: json.dumps(metadata(rec, parts))}
            torch.jit.save(traced, tmp, _extra_files=extra)

    atomic_write(out, write)
    return out


def write_openvino(onnx_path: Path, out: Path) -> Path:
    """An OpenVINO IR pair (`out` .xml and its .bin) converted from a recog ONNX file."""
    ov = require("openvino", "openvino")
    from recog.deploy.backend import read_meta

    meta = read_meta(onnx_path)
    model = ov.convert_model(str(onnx_path))
    return save_ir(model, out, meta.values)


def save_ir(model: Any, out: Path, meta: dict[str, str]) -> Path:
    """An OpenVINO model saved atomically as `out` .xml and its .bin, `meta` in its
    rt_info under `recog`; the weights stay fp32 (no fp16 compression)."""
    ov = require("openvino", "openvino")
    for key, value in meta.items():
        model.set_rt_info(value, ["recog", key])
    out = out.with_suffix(".xml")

    def write(tmp: str) -> None:
        # save_model writes NAME.xml and NAME.bin: write both under the temporary stem,
        # then move the .bin beside the final .xml before the .xml is renamed into place
        tmp_xml = Path(tmp).with_suffix(".xml")
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        Path(tmp_xml.with_suffix(".bin")).replace(out.with_suffix(".bin"))
        if tmp_xml != Path(tmp):
            Path(tmp_xml).replace(tmp)

    atomic_write(out, write)
    return out

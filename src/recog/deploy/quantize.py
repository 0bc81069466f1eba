"""int8 through onnxruntime's quantization tools (static QDQ, per-channel) and through OpenVINO's NNCF, calibrated on training images.

- `quant_pre_process` (shape inference and graph optimization) first, as onnxruntime's
  quantization guide asks, then `quantize_static` in QDQ format: uint8 activations,
  int8 weights per output channel (the U8S8 pair its x86 kernels run fastest), MinMax
  calibration on the images the caller hands in.
- Where static quantization fails on a graph (an operator it cannot calibrate), the
  dynamic kind (weights only, activations quantized per batch) is the fallback, and the
  record says which one ran.
- `nodes_to_exclude` keeps named nodes in float: the accuracy-controlled search in
  `recog.deploy.run` uses it to keep the layers the metric is most sensitive to.

onnxruntime drops a model's metadata while it rewrites it; it is copied back.

OpenVINO (`recog export --format openvino --int8`): NNCF's `quantize` on the IR that
OpenVINO converts from the checked ONNX file, with its defaults for CPUs; its
`IgnoredScope` keeps operations in float as `nodes_to_exclude` does (the decoding tail
always, the search's picks by OpenVINO's operation names).  Both libraries do the
quantizing; recog only chooses what to calibrate on and what to keep in float.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from recog.deploy.backend import require
from recog.errors import RecogError
from recog.io import atomic_write

#: operators whose weights int8 quantization rewrites (the candidates to keep in float)
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")


def weighted_nodes(path: Path) -> list[str]:
    """Names of the weighted nodes of an ONNX graph, in graph order."""
    onnx = require("onnx", "onnx")
    graph = onnx.load(str(path)).graph
    return [n.name for n in graph.node if n.op_type in WEIGHTED_OPS]


def output_tail(path: Path) -> list[str]:
    """Nodes after the last weighted one, in graph order: the decoding at the graph's end
    (YOLO's sigmoid scores, DFL softmax and box arithmetic), kept in float always.
    Quantized, 256 levels of score rank thousands of candidate boxes as ties."""
    onnx = require("onnx", "onnx")
    nodes = list(onnx.load(str(path)).graph.node)
    last = max((i for i, n in enumerate(nodes) if n.op_type in WEIGHTED_OPS), default=len(nodes))
    return [n.name for n in nodes[last + 1 :]]


class _Reader:
    """onnxruntime's CalibrationDataReader over uint8 image batches."""

    def __init__(self, batches: Iterable[np.ndarray]) -> None:
        self._batches: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"images": batch}


def pre_process(fp32: Path, out: Path) -> Path:
    """onnxruntime's pre-processing of `fp32` (shape inference, optimization) at `out`;
    node names for `exclude` come from this graph."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    require("onnxruntime.quantization", "onnx")
    fp32, out = Path(fp32).resolve(), Path(out).resolve()
    with _quiet():
        _pre_process(quant_pre_process, fp32, out)
    return out


def quantize_int8(
    pre: Path,
    out: Path,
    calibration: list[np.ndarray],
    *,
    metadata_from: Path,
    exclude: list[str] | None = None,
) -> str:
    """`pre` (see `pre_process`) as an int8 model at `out`, with `metadata_from`'s metadata;
    returns the kind that ran ("static" or "dynamic")."""
    onnx = require("onnx", "onnx")
    quant = require("onnxruntime.quantization", "onnx")
    meta = {
        p.key: p.value
        for p in onnx.load(str(metadata_from), load_external_data=False).metadata_props
    }
    pre, out = Path(pre).resolve(), Path(out).resolve()
    keep = [*output_tail(pre), *(exclude or [])]
    kind = "static"
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        quantized = Path(tmp) / "int8.onnx"
        with _quiet():
            try:
                quant.quantize_static(
                    str(pre),
                    str(quantized),
                    _Reader(calibration),
                    quant_format=quant.QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=quant.QuantType.QUInt8,
                    weight_type=quant.QuantType.QInt8,
                    calibrate_method=quant.CalibrationMethod.MinMax,
                    nodes_to_exclude=keep,
                )
            except Exception:  # an operator static calibration cannot handle
                kind = "dynamic"
                quant.quantize_dynamic(
                    str(pre),
                    str(quantized),
                    per_channel=True,
                    weight_type=quant.QuantType.QInt8,
                    nodes_to_exclude=keep,
                )
        proto = onnx.load(str(quantized))
        del proto.metadata_props[:]
        for key, value in {**meta, "int8": kind}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        atomic_write(out, lambda target: onnx.save(proto, target))
    return kind


def _pre_process(run, fp32: Path, pre: Path) -> None:
    """Shape inference and optimization; the symbolic kind fails on graphs whose shapes
    follow the input's (YOLO's point grid), and the plain kind then does the job."""
    try:
        run(str(fp32), str(pre), skip_symbolic_shape=False)
    except Exception:  # onnxruntime raises a bare Exception("Incomplete symbolic shape inference")
        run(str(fp32), str(pre), skip_symbolic_shape=True)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime's quantizer logs and prints per node (a command prints its own line), and
    its failing symbolic shape inference saves `sym_shape_infer_temp.onnx` and its weights
    into the working directory: it runs in a temporary one."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="recog-quant-") as scratch,
            contextlib.chdir(scratch),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            yield
    finally:
        logger.setLevel(level)


# ------------------------------------------------------------- OpenVINO: NNCF
#: OpenVINO operations with weights (the candidates to keep in float), as `WEIGHTED_OPS`
OV_WEIGHTED_OPS = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")


def _ov_model(fp32: Path) -> Any:
    ov = require("openvino", "openvino")
    return ov.convert_model(str(fp32))


def ov_weighted_nodes(fp32: Path) -> list[str]:
    """Names of the weighted operations of `fp32` (ONNX) as OpenVINO converts it, in order."""
    ops = _ov_model(fp32).get_ordered_ops()
    return [op.get_friendly_name() for op in ops if op.get_type_name() in OV_WEIGHTED_OPS]


def _ov_tail(model: Any) -> list[str]:
    """The operations after the last weighted one (the decoding), kept float as in ONNX."""
    ops = list(model.get_ordered_ops())
    last = max(
        (i for i, op in enumerate(ops) if op.get_type_name() in OV_WEIGHTED_OPS), default=len(ops)
    )
    return [op.get_friendly_name() for op in ops[last + 1 :] if op.get_type_name() != "Result"]


def quantize_openvino_int8(
    fp32: Path, out: Path, calibration: list[np.ndarray], *, exclude: list[str] | None = None
) -> str:
    """`fp32` (a recog ONNX file) as an int8 OpenVINO IR at `out` (.xml and .bin) through
    NNCF's post-training quantization (its default preset: symmetric int8 weights per
    channel, activations per tensor, fast bias correction), calibrated on `calibration`;
    the file's recog metadata is copied into the IR.  Returns "nncf"."""
    # importing nncf logs torch's "no CUDA runtime" warning, and nncf logs each ignored
    # node at INFO: a command prints its own one line
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    nncf = require("nncf", "openvino")
    logging.getLogger("nncf").setLevel(logging.ERROR)
    from recog.deploy.backend import first_line, read_meta
    from recog.deploy.export import save_ir

    model = _ov_model(fp32)
    ignored = nncf.IgnoredScope(names=[*_ov_tail(model), *(exclude or [])], validate=False)
    try:
        with _quiet():
            quantized = nncf.quantize(
                model,
                nncf.Dataset(calibration),
                subset_size=len(calibration),  # NNCF counts the dataset's items: batches
                ignored_scope=ignored,
            )
    except Exception as exc:  # noqa: BLE001 - NNCF raises many types for a graph it cannot take
        raise RecogError(f"{fp32}: NNCF cannot quantize it ({first_line(exc)})") from None
    save_ir(quantized, Path(out), {**read_meta(fp32).values, "int8": "nncf"})
    return "nncf"

"""Exported models as recog models: one runtime session behind the torch model's interface.

`ExportedModel` is an `nn.Module` that answers what the torch model answers (logits,
or per-image detections after YOLO's NMS step, or those of a graph that answers one
image at a time, run image by image), so every task's `predict`, the
evaluator, the report and the server use an exported file through the same seam,
with no branch per task or per backend.

The Task seam hands a model normalized tensors; the exported graph takes uint8
pixels and normalizes itself (the file predicts alone).  `ExportedModel` therefore
undoes the task's normalization and rounds back to uint8.  That round trip is exact:
the normalized values came from uint8 pixels through two float operations, far
inside the 0.5 a rounding forgives, and padding that a task adds in normalized space
(zeros) becomes the mean colour, the pixel it stands for.

Runtimes: onnxruntime (CPU provider, or CUDA when it is installed and asked for) and
OpenVINO (its CPU plugin reads ONNX and its own IR).  Both are optional extras
(`pip install 'recog[export]'`); a missing one is a one-line error saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recog.errors import RecogError

BACKENDS = ("torch", "onnx", "openvino")
#: metadata keys every exported file carries (`recog.deploy.export.metadata`)
META_KEYS = ("recog_version", "task", "model", "classes", "img_size", "mean", "std",
             "outputs", "finish", "finish_args", "config")  # fmt: skip
#: the member of a TorchScript archive that holds recog's metadata (`torch.jit.save`'s extra files)
TORCHSCRIPT_META = "recog.json"


@dataclass
class ExportMeta:
    """What an exported file says about itself."""

    values: dict[str, str]

    def json(self, key: str) -> Any:
        return json.loads(self.values[key])

    @property
    def mean(self) -> list[float]:
        return self.json("mean")

    @property
    def std(self) -> list[float]:
        return self.json("std")


def require(module: str, backend: str) -> Any:
    """Import an optional runtime or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise RecogError(
            f"the {backend} backend needs the {module} package: pip install 'recog[export]'"
        ) from None


def read_meta(path: Path) -> ExportMeta:
    """The recog metadata of an ONNX file or an OpenVINO IR (.xml)."""
    path = Path(path)
    if not path.is_file():
        raise RecogError(f"{path}: no such exported model")
    if path.suffix == ".torchscript":
        values = _torchscript_meta(path)
    elif path.suffix == ".xml":
        ov = require("openvino", "openvino")
        try:
            model = ov.Core().read_model(str(path))
            values = {k: str(model.get_rt_info(["recog", k]).astype(str)) for k in META_KEYS}
        except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses
            raise RecogError(f"{path}: not a recog OpenVINO model ({first_line(exc)})") from None
    else:
        onnx = require("onnx", "onnx")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise RecogError(f"{path}: not an ONNX file ({first_line(exc)})") from None
        values = {p.key: p.value for p in proto.metadata_props}
    missing = [k for k in META_KEYS if k not in values]
    if missing:
        raise RecogError(f"{path}: not exported by recog (no {missing[0]} in its metadata)")
    for key, fits in _META_SHAPES.items():  # once here, not a JSONDecodeError at first use
        try:
            value = json.loads(values[key])
        except ValueError:
            value = None
        if not fits(value):
            raise RecogError(f"{path}: its recog metadata is damaged ({key} {values[key][:60]!r})")
    return ExportMeta(values)


def _numbers(value: Any, *, positive: bool) -> bool:
    """Three finite numbers (per channel), each above 0 when `positive`."""
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(abs(v) < float("inf") and (v > 0 or not positive) for v in value)
    )


#: the JSON metadata values and the shape each must have
_META_SHAPES = {
    "classes": lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v),
    "mean": lambda v: _numbers(v, positive=False),
    "std": lambda v: _numbers(v, positive=True),
    "outputs": lambda v: isinstance(v, list) and all(isinstance(o, str) for o in v),
    "finish_args": lambda v: isinstance(v, dict),
}


def _torchscript_meta(path: Path) -> dict[str, str]:
    """recog's metadata from a TorchScript archive's extra files, read as a zip member
    (no code of the archive is loaded to read it)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(f"/extra/{TORCHSCRIPT_META}"))
            values = json.loads(archive.read(name))
    except (zipfile.BadZipFile, StopIteration, ValueError, OSError) as exc:
        raise RecogError(
            f"{path}: not a recog TorchScript file ({first_line(exc) or 'no metadata'})"
        ) from None
    if not isinstance(values, dict):
        raise RecogError(f"{path}: not a recog TorchScript file (its metadata is not a table)")
    return {str(k): str(v) for k, v in values.items()}


def first_line(exc: BaseException) -> str:
    """A runtime's exception as one short line for a RecogError."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


class Session:
    """One runtime's compiled model: uint8 numpy images in, numpy outputs out."""

    def __init__(
        self, path: Path, backend: str, *, threads: int | None = None, spinning: bool = False
    ) -> None:
        self.path, self.backend = Path(path), backend
        if backend == "onnx":
            ort = require("onnxruntime", "onnx")
            opts = ort.SessionOptions()
            # errors only: an R-CNN's mask loop warns at every image that its output grew
            opts.log_severity_level = 3
            # Predicting, idle threads sleep instead of spinning: between batches the
            # decoding threads take the cores (`recog.api.images.prepared_batches`), and
            # spinning threads would hold them.  Forward passes back to back (`recog bench`)
            # spin, onnxruntime's default (97 against 66 images/s on resnet18, 2 cores).
            opts.add_session_config_entry(
                "session.intra_op.allow_spinning", "1" if spinning else "0"
            )
            if threads:
                opts.intra_op_num_threads = threads
            try:
                self._ort = ort.InferenceSession(
                    str(path), opts, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:
                raise RecogError(
                    f"{path}: onnxruntime cannot load it ({first_line(exc)})"
                ) from None
            self._names = [o.name for o in self._ort.get_outputs()]
        elif backend == "openvino":
            ov = require("openvino", "openvino")
            # OpenVINO's CPU plugin runs bf16 by default on CPUs with avx512_bf16/AMX: on such a
            # machine the IR drifted 0.014 from torch (measured), past the fp32 export check. An
            # fp32 export runs in fp32; int8 is asked for explicitly with `recog export --int8`.
            config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            try:
                self._ov = ov.Core().compile_model(str(path), "CPU", config)
            except Exception as exc:
                raise RecogError(f"{path}: OpenVINO cannot load it ({first_line(exc)})") from None
            self._names = [o.get_any_name() for o in self._ov.outputs]
        elif backend == "torchscript":
            # only `recog export` opens one, the file it has just written, to check it; a
            # TorchScript archive holds code, so files from elsewhere are refused before here
            # (`recog.api.exported.open_exported`)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch calls TorchScript deprecated
                self._ts = torch.jit.load(str(path), map_location="cpu").eval()
        else:
            raise RecogError(f"backend {backend!r}: not one of {', '.join(BACKENDS[1:])}")

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs; a runtime's failure on an input is one line naming the file."""
        try:
            return self._run(images)
        except RecogError:
            raise
        except Exception as exc:  # each runtime raises its own kinds
            raise RecogError(
                f"{self.path}: {self.backend} failed on a batch of shape "
                f"{tuple(images.shape)} ({first_line(exc)})"
            ) from None

    def _run(self, images: np.ndarray) -> list[np.ndarray]:
        if self.backend == "onnx":
            return self._ort.run(None, {"images": images})
        if self.backend == "torchscript":
            with torch.inference_mode():
                out = self._ts(torch.from_numpy(images))
            return [o.numpy() for o in (out if isinstance(out, tuple | list) else [out])]
        result = self._ov(images)
        return [np.asarray(result[o]) for o in self._ov.outputs]


class ExportedModel(nn.Module):
    """An exported file answering like the torch model it came from (see the docstring)."""

    #: no gradients, no layers to hook: explanations, attacks and feature scores refuse it
    exported: bool = True

    def __init__(self, path: Path, backend: str = "onnx", *, threads: int | None = None) -> None:
        super().__init__()
        self.meta = read_meta(path)
        self.session = Session(path, backend, threads=threads)
        self.finish = self.meta.values["finish"]
        self.finish_args = self.meta.json("finish_args")
        self.outputs: list[str] = self.meta.json("outputs")
        self.register_buffer("mean", torch.tensor(self.meta.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.meta.std).view(1, 3, 1, 1))

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized float -> the uint8 pixels it came from."""
        scaled = (x.float() * self.std.to(x.device) + self.mean.to(x.device)) * 255.0
        return scaled.round_().clamp_(0, 255).to(torch.uint8)

    def raw(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The graph's outputs for uint8 (B, 3, H, W) images."""
        outs = self.session.run(np.ascontiguousarray(images.cpu().numpy()))
        return [torch.from_numpy(np.asarray(o)).to(images.device) for o in outs]

    def _detections(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """One image's answer from a graph that ends in detections, without the rows of label
        -1: the graph's padding row (`recog.models.detect.PADDING_ROWS`) and the row OpenVINO
        (2026.4) answers where the graph's detections are empty (label -1 too, measured)."""
        answer = dict(zip(self.outputs, self.raw(image), strict=True))
        real = answer["labels"] >= 0
        return {k: v[real] for k, v in answer.items()}

    def forward(self, x: torch.Tensor, targets: Any = None) -> Any:
        if targets is not None:
            raise RecogError(f"{self.session.path}: an exported model does not train")
        pixels = self.pixels(x)
        if self.finish == "detections":  # a graph of one image: its outputs are its answer
            return [self._detections(one) for one in pixels.split(1)]
        outs = self.raw(pixels)
        if self.finish == "nms":
            from recog.models.yolo import select_detections

            return select_detections(outs[0], outs[1], **self.finish_args)
        return outs[0]

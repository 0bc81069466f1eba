"""A `Recognizer` whose model is an exported file: `recog.load(FILE)` and `--backend onnx|openvino`.

The file's metadata holds the run's resolved config and classes, so the task is
rebuilt exactly as the run built it (`recog.api.build_task`) and everything above
the model (predict, evaluate, the report, the server) is unchanged.  A run's
calibration and reject rule are not carried: they read the torch model's features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recog.config import TrainConfig
from recog.deploy.backend import ExportedModel, read_meta
from recog.errors import RecogError
from recog.models.factory import get_spec
from recog.yaml_text import load_yaml_text

if TYPE_CHECKING:
    from recog.models.registry import ModelSpec

#: the file `--backend` looks for in a run directory, by backend
RUN_FILES = {"onnx": ("export/model.onnx",), "openvino": ("export/model.xml", "export/model.onnx")}
#: `.torchscript` is recognised only to be refused (`open_exported`)
EXPORTED_SUFFIXES = (".onnx", ".xml", ".torchscript")


def exported_file(run_dir: Path, backend: str) -> Path:
    """The run's exported file for `backend`, or a one-line error saying how to make it."""
    for name in RUN_FILES[backend]:
        if (run_dir / name).is_file():
            return run_dir / name
    raise RecogError(
        f"{run_dir}: no {RUN_FILES[backend][0]}; run `recog export {run_dir} --format "
        f"{'onnx' if backend == 'onnx' else 'openvino'}` first"
    )


@dataclass
class ExportedRun:
    """An exported file's parts, for `recog.api.load` to build its `Recognizer` from."""

    home: Path
    config: TrainConfig
    class_names: list[str]
    model: ExportedModel
    spec: ModelSpec


def open_exported(path: Path, *, backend: str | None = None) -> ExportedRun:
    """An exported file on its runtime (ONNX on onnxruntime unless `backend` says)."""
    path = Path(path)
    if path.suffix == ".torchscript":
        raise RecogError(
            f"{path}: a TorchScript file holds code, and recog runs no code from files; "
            "load it in LibTorch, or predict with the run's ONNX or OpenVINO export"
        )
    backend = backend or ("openvino" if path.suffix == ".xml" else "onnx")
    meta = read_meta(path)
    try:
        cfg = TrainConfig.from_dict(
            load_yaml_text(meta.values["config"], f"{path} (its recog config)"), source=f"{path}"
        )
        classes = meta.json("classes")
    except (ValueError, TypeError) as exc:
        raise RecogError(f"{path}: its recog metadata is damaged ({exc})") from None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise RecogError(f"{path}: its recog metadata has no list of class names")
    # a run's own export (RUN/export/model.onnx) answers as the run: its name, its records
    home = path.parent.parent if path.parent.name == "export" else path.parent
    return ExportedRun(home, cfg, classes, ExportedModel(path, backend), get_spec(str(cfg.model)))

"""A trained run in memory: `load` rebuilds a `Recognizer` from its run directory (one job).

`load` reads `config.yaml`, `labels.json` and `model.safetensors` (or an exported
ONNX/OpenVINO file) with nothing unpickled; the `Recognizer` predicts, evaluates and
exports through its Task.  Its trust methods (explain, calibrate, OOD) are
`recog.api.trust`; what it accepts as images is `recog.api.images`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from recog import io as rio
from recog.api.images import (
    ImageInput,
    _as_image_list,
    prepared_batches,
    same_size_runs,
)
from recog.api.results import Result
from recog.api.runs import (
    CONFIG_NAME,
    LABELS_NAME,
    build_model,
    build_task,
)
from recog.api.trust import TrustMethods
from recog.confidence import Confidence
from recog.config import TrainConfig
from recog.engine.distributed import DistContext, pick_device
from recog.engine.trainer import (
    WEIGHTS_NAME,
    final_evaluation,
    sample_predictions,
)
from recog.errors import RecogError
from recog.models.registry import ModelSpec
from recog.tasks import Task
from recog.types import Prediction, Selection


# ---------------------------------------------------------------------- load
def load(run_dir: str | Path, *, device: str = "auto", backend: str = "torch") -> Recognizer:
    """Rebuild a trained recognizer from its run directory (no training data, no unpickling).

    An exported file (`.onnx`, OpenVINO `.xml`) loads on its runtime; `backend` "onnx" or
    "openvino" loads a run directory's export (`recog export`) instead of its weights."""
    run_dir = Path(run_dir)
    if backend not in ("torch", "onnx", "openvino"):
        raise RecogError(f"backend {backend!r}: not one of torch, onnx, openvino")
    from recog.api.exported import EXPORTED_SUFFIXES, exported_file, open_exported

    exported = None
    if run_dir.suffix in EXPORTED_SUFFIXES and not run_dir.is_dir():
        exported = open_exported(run_dir, backend=None if backend == "torch" else backend)
    elif backend != "torch" and run_dir.is_dir():
        exported = open_exported(exported_file(run_dir, backend), backend=backend)
    if exported is not None:
        return Recognizer(
            run_dir=exported.home, config=exported.config, class_names=exported.class_names,
            model=exported.model, spec=exported.spec, device=torch.device("cpu"),
            task=build_task(exported.config, exported.class_names, exported.spec),
        )  # fmt: skip
    if not run_dir.is_dir():
        raise RecogError(f"{run_dir}: no such run directory")
    missing = [n for n in (CONFIG_NAME, LABELS_NAME, WEIGHTS_NAME) if not (run_dir / n).is_file()]
    if missing:
        raise RecogError(
            f"{run_dir}: incomplete run directory, missing {', '.join(missing)} (did training finish?)"
        )
    cfg = upgrade_config(TrainConfig.load(run_dir / CONFIG_NAME))
    class_names = _class_names(run_dir / LABELS_NAME)
    model, spec = _load_model(run_dir, cfg, len(class_names))
    task = build_task(cfg, class_names, spec)
    dev = pick_device(device)
    return Recognizer(
        run_dir=run_dir,
        config=cfg,
        class_names=class_names,
        model=model,
        spec=spec,
        task=task,
        device=dev,
        confidence=Confidence.load(run_dir, task),
    )


def _class_names(path: Path) -> list[str]:
    names = rio.read_json(path)
    if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
        raise RecogError(f"{path}: not a JSON list of class names")
    return names


def _load_model(run_dir: Path, cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, ModelSpec]:
    """The model `config.yaml` builds with `model.safetensors` loaded strictly into it.

    A run whose two files disagree (config.yaml edited to another task or model, weights
    copied from another run) is refused naming both: loading what fits would predict
    with a model nobody trained (issue 33: a classify run edited to `task: detect`
    answered with the classifier)."""
    config, weights = run_dir / CONFIG_NAME, run_dir / WEIGHTS_NAME
    state, metadata = rio.read_weights(weights)
    for key, ours in (("model", str(cfg.model)), ("task", str(cfg.task))):
        if metadata.get(key, ours) != ours:  # runs written by save_weights record both
            raise RecogError(
                f"{weights} holds weights of a {metadata[key]} {key}, but {config} says "
                f"{key} {ours}; the two are not one run"
            )
    try:
        model, spec = build_model(cfg, num_classes)
    except RecogError as exc:  # its model_args, img_size: the file's values, not flags
        raise RecogError(f"{config}: {exc}") from None
    if cfg.task is not None and cfg.task != spec.task:
        raise RecogError(f"{config}: model {cfg.model} is a {spec.task} model, not {cfg.task}")
    try:
        model.load_state_dict(state)  # strict: every key and shape
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = lines[1] if len(lines) > 1 else (lines or [type(exc).__name__])[0]
        raise RecogError(
            f"{weights} does not fit the {cfg.model} that {config} builds ({first})"
        ) from exc
    return model, spec


def upgrade_config(cfg: TrainConfig) -> TrainConfig:
    """A run written by config version 2 (before the run recorded its normalization; its
    fine-tuning fields read as none, `recog.config`): the model's normalization, which it
    was trained with."""
    if cfg.version >= 3:
        return cfg
    from recog.models.factory import get_spec

    spec = get_spec(cfg.model)
    return dataclasses.replace(cfg, mean=list(spec.mean), std=list(spec.std))


class Recognizer(TrustMethods):
    """A trained model with its task and preprocessing: predict, evaluate."""

    def __init__(
        self,
        *,
        run_dir: Path,
        config: TrainConfig,
        class_names: list[str],
        model: nn.Module,
        spec: ModelSpec,
        task: Task,
        device: torch.device,
        confidence: Confidence | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.class_names = class_names
        self.spec = spec
        self.task = task
        self.device = device
        self.model = model.to(device).eval()
        #: the run's temperature and reject rule (`recog calibrate`), None without
        self.confidence = confidence
        #: what `predict` and `predict_batch` keep when a call names nothing else (its None
        #: values: the task's defaults); `recog predict --out --conf` sets it for a whole job
        self.selection = Selection()

    @property
    def img_size(self) -> int:
        return int(self.config.img_size)

    def __repr__(self) -> str:
        return f"Recognizer({self.config.task}, {self.config.model}, {len(self.class_names)} classes, {self.run_dir})"

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        batch_size: int = 32,
        reject: bool = True,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        keep_all: bool = False,
    ) -> list[Result]:
        """Predictions for image files, folders, globs, or uint8 (3, H, W) tensors / HxWx3 arrays / PIL images.

        A calibrated run's temperature is applied; with its out-of-distribution
        rule, an image below the threshold comes back `unknown` with its
        `ood_score` (`reject=False`: no rule, every image gets a class).
        `conf`, `iou`, `max_det` select what is kept as `recog predict` does
        (`Task.select`; None: the task's default, e.g. boxes scoring 0.25 or more).
        Each `Result` knows its `path`, `class_names`, and can `plot()` itself.
        `keep_all=True`: every candidate the model kept, unselected (what `recog val`
        measures; the data doctor's box check reads them all, as cleanlab asks).
        """
        if keep_all and (conf, iou, max_det) != (None, None, None):
            raise RecogError("keep_all: every candidate, so no conf, iou or max_det with it")
        base = self.selection
        selection = Selection(
            conf=base.conf if conf is None else conf,
            iou=base.iou if iou is None else iou,
            max_det=base.max_det if max_det is None else max_det,
        )
        self.task.check_selection(selection)
        items = _as_image_list(images)
        out: list[Result] = []
        for prepared in prepared_batches(items, batch_size, self.task):
            # a task may keep each image's own size (segmentation): batch equal sizes together
            for group in same_size_runs(prepared):
                batch = torch.stack([image for image, _ in group]).to(self.device)
                out += self.predict_batch(
                    batch, [meta for _, meta in group], reject=reject,
                    selection=selection, select=not keep_all,
                )  # fmt: skip
        for i, item in enumerate(items):
            on_disk = isinstance(item, str | Path)
            out[i].path, out[i].source = (str(item), None) if on_disk else (None, item)
        return out

    def predict_batch(
        self,
        images: torch.Tensor,
        meta: Sequence[dict[str, Any]] | None = None,
        *,
        reject: bool = True,
        selection: Selection | None = None,
        select: bool = True,
    ) -> list[Result]:
        """Predictions for prepared uint8 (B, 3, H, W) images on the device (`Task.prepare`'s):
        the task's, with the run's temperature and reject rule, selected (`Task.select`;
        None: `self.selection`) as every caller selects (the server's micro-batches)."""
        if self.confidence is None:
            raw = self.task.predict(self.model, images, meta)
        else:
            raw = self.confidence.predict(
                self.task, self.model, self.spec, images, meta, reject=reject
            )
        if not select:
            return [self._result(p) for p in raw]
        selection = selection or self.selection
        return [self._result(self.task.select(p, selection)) for p in raw]

    def _result(self, pred: Prediction) -> Result:
        values = {f.name: getattr(pred, f.name) for f in dataclasses.fields(pred)}
        return Result(**{**values, "class_names": self.class_names, "task": self.task})

    def _dataset(self, data: str | None) -> Any:
        """`data` with the run's classes at its input size; None: the run's validation split."""
        if data is None:
            return self.task.data.splits(self.config).val
        return self.task.data.evaluation(data, self.config, self.class_names)

    def export(self, fmt: str = "onnx", *, int8: bool = False, out: str | Path | None = None,
               **options: Any) -> dict[str, Any]:  # fmt: skip
        """`recog export`: the checked file (default RUN/export/) and its `export.json` record;
        `options` are `recog.deploy.run.export_run`'s (max_drop, dynamic_batch, opset, ...)."""
        from recog.deploy.run import export_run

        return export_run(self, fmt=fmt, int8=int8, out=None if out is None else Path(out),
                          **options)  # fmt: skip

    def evaluate(
        self,
        data: str | None = None,
        *,
        out_dir: str | Path | None = None,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
    ) -> dict[str, Any]:
        """Metrics on `data` (default: the run's own validation split); with `out_dir`, also plots and report.

        Unlike `predict`, nothing is selected by default: mAP integrates precision over
        every recall the model reaches, down to its own lowest score (0.001 for yolo),
        and cutting at predict's 0.25 would end the curve early and lower it.  `conf`,
        `iou`, `max_det` measure the model as `predict` with them answers."""
        selection = Selection(conf=conf, iou=iou, max_det=max_det)
        self.task.check_selection(selection)
        select = None
        if selection.given():

            def select(preds: list[Prediction]) -> list[Prediction]:
                return [self.task.select(p, selection) for p in preds]

        start = time.perf_counter()
        dataset = self._dataset(data)
        name = self.config.data if data is None else data
        ctx = DistContext(device=self.device)
        # a calibrated run is measured as it predicts: with its temperature (no reject rule)
        model = self.model if self.confidence is None else self.confidence.scaled(self.model)
        acc = final_evaluation(
            self.task,
            model,
            dataset,
            ctx,
            batch_size=int(self.config.batch_size) * 2,
            select=select,
        )
        extra = {"eval_seconds": round(time.perf_counter() - start, 3), "data": str(name)}
        if selection.given():
            extra["selection"] = {
                k: v for k, v in dataclasses.asdict(selection).items() if v is not None
            }
        if out_dir is None:
            return {**acc.compute(), **extra}
        from recog.report.run_outputs import write_outputs

        samples = sample_predictions(self.task, model, dataset, self.device)
        return write_outputs(
            Path(out_dir),
            task=self.task,
            acc=acc,
            extra_metrics=extra,
            samples=samples,
            results_csv=None,
            config=self.config.to_dict(),
            title=f"recog val: {self.config.model} on {name}",
            summary={"run": str(self.run_dir), "data": str(name), "images": len(dataset)},
        )

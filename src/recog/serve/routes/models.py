"""`GET /v1/models`: what each served model is, and how well its run did on validation data.

`model_info` is computed once per model when the app is built: the run's
task, architecture, classes, input size, the numbers of its `metrics.json`
(a missing or unreadable file gives no metrics, not an error) and its main
metric, named by the run's Task (`Task.scores.primary`: Mask R-CNN's
`mask_map` is not a semantic model's `miou`), so no client keeps its own
table of which metric matters for which task; and its `trust`: the
temperature and reject rule `recog calibrate` left in the run; and its
`robustness`: the curve the last `recog attack` left in `RUN/robustness/`.
"""

from __future__ import annotations

import math

from fastapi import APIRouter

from recog.api import Recognizer
from recog.errors import RecogError
from recog.io import read_json
from recog.serve.errors import error_responses
from recog.serve.facet import SERVE
from recog.serve.schemas import (
    MainMetric,
    ModelInfo,
    ModelsResponse,
    Robustness,
    RobustPoint,
    Trust,
)
from recog.serve.state import ServingDep

router = APIRouter(tags=["models"])


@router.get(
    "/v1/models",
    response_model=ModelsResponse,
    responses=error_responses(401),
)
async def list_models(state: ServingDep) -> ModelsResponse:
    """The served models: name, task, classes, input size, validation metrics and the main one."""
    return ModelsResponse(models=[m.info for m in state.models.values()])


def model_info(name: str, rec: Recognizer, max_batch: int) -> ModelInfo:
    """The `/v1/models` entry of `rec`, served as `name`."""
    metrics: dict[str, float] = {}
    path = rec.run_dir / "metrics.json"
    try:  # read_json: binary bytes or a huge file are one RecogError, not a failed server
        raw = read_json(path) if path.is_file() else {}
    except RecogError:
        raw = {}
    for key, value in raw.items() if isinstance(raw, dict) else ():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            metrics[key] = float(value)
    main = rec.task.scores.primary
    serving = SERVE.of(rec.task) if SERVE.has(rec.task) else None
    confidence = rec.confidence
    calibration = confidence.calibration if confidence is not None else None
    rule = confidence.rule if confidence is not None else None
    trust = Trust(
        temperature=calibration.temperature if calibration is not None else None,
        reject_score=rule.score if rule is not None else None,
        reject_threshold=rule.threshold if rule is not None else None,
        reject_tpr=rule.tpr if rule is not None else None,
    )
    return ModelInfo(
        name=name,
        task=str(rec.config.task),
        architecture=str(rec.config.model),
        classes=list(rec.class_names),
        input_size=rec.img_size,
        metrics=metrics,
        main_metric=MainMetric(name=main, value=metrics.get(main)),
        correction=serving.correction if serving else None,
        top_k=bool(serving and serving.ranks_classes),
        selection=_selection_options(rec),
        max_batch=max_batch,
        trust=trust,
        robustness=robustness_info(rec),
    )


def _selection_options(rec: Recognizer) -> list[str]:
    """Which of conf, iou, max_det the model's predictions take, as its Task says."""
    from recog.types import Selection

    probes = {
        "conf": Selection(conf=0.5),
        "iou": Selection(iou=0.5),
        "max_det": Selection(max_det=1),
    }
    taken = []
    for name, probe in probes.items():
        try:
            rec.task.check_selection(probe)
            taken.append(name)
        except RecogError:
            pass
    return taken


def robustness_info(rec: Recognizer) -> Robustness | None:
    """The last `recog attack` record of the run (None when absent or unreadable)."""
    path = rec.run_dir / "robustness" / "robustness.json"
    if not path.is_file():
        return None
    try:
        raw = read_json(path)
        metric = raw["metric"]
        return Robustness(
            attack=raw["attack"], norm=raw["norm"], steps=raw["steps"], images=raw["images"],
            metric=metric, clean=raw["clean"].get(metric),
            robust=[RobustPoint(eps=row["eps"], value=row.get(metric)) for row in raw["robust"]],
            trustworthy=bool(raw["checks"]["trustworthy"]),
        )  # fmt: skip
    except (RecogError, KeyError, TypeError, ValueError, AttributeError):
        return None  # a foreign or damaged file: no robustness to show, not a failed server

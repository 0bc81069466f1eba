"""The wire format of the REST API: pydantic models that FastAPI turns into the OpenAPI schema.

A prediction's `result` is the task's `to_record` output: classification
fills `label`, `score` and `top_k` (and `unknown`, `ood_score` for a run with
a reject rule); detection `detections`; semantic
segmentation `segmentation`; instance segmentation both `detections` and
`segmentation`.  Boxes are `[x1, y1, x2, y2]` in pixels of the uploaded
image (after its EXIF orientation).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from recog.types import TaskName


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer."""

    error: str = Field(description="stable short code, e.g. `unsupported_media`, `too_large`")
    detail: str = Field(description="what was wrong, for people")


class ClassScore(BaseModel):
    label: str
    score: float


Box = Annotated[list[float], Field(min_length=4, max_length=4, description="x1, y1, x2, y2")]


class Detection(BaseModel):
    label: str
    score: float
    box: Box


class SegmentationResult(BaseModel):
    width: int
    height: int
    mask_png: str = Field(
        description="base64 PNG, one uint8 per pixel: the class id (semantic) or "
        "1 + the index of the detection (instance; 0 is background)"
    )
    pixel_fraction: dict[str, float] | None = Field(
        default=None, description="fraction of the image per class (semantic)"
    )


class PredictionResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    label: str | None = Field(
        default=None, description="the class; null when `unknown` (none of the run's classes)"
    )
    score: float | None = None
    top_k: list[ClassScore] | None = None
    unknown: bool | None = Field(
        default=None,
        description="true when the image scored below the run's out-of-distribution threshold "
        "(`recog calibrate`): none of these classes; `top_k` still ranks the nearest",
    )
    ood_score: float | None = Field(
        default=None, description="the image's out-of-distribution score (higher: more familiar)"
    )
    detections: list[Detection] | None = None
    segmentation: SegmentationResult | None = None


class ImageInfo(BaseModel):
    sha256: str
    width: int
    height: int


class PredictResponse(BaseModel):
    id: str = Field(description="prediction id, for /v1/feedback")
    model: str
    task: TaskName
    image: ImageInfo
    result: PredictionResult
    latency_ms: float = Field(description="server time from request to answer, milliseconds")


class ExplainMap(BaseModel):
    """One heat map: its target, the overlay, and how faithful it is (recog.explain)."""

    target: str = Field(description="what the map explains: a class, a box, a class region")
    label: int
    box: list[float] | None = Field(None, description="xyxy in the overlay's pixels (detection)")
    overlay: str = Field(description="PNG data URL: the heat map over the image the model saw")
    deletion_auc: float = Field(description="lower is better")
    insertion_auc: float = Field(description="higher is better")
    random_deletion_auc: float = Field(description="a random map's, on the same image")
    random_insertion_auc: float


class ExplainResponse(BaseModel):
    model: str
    task: TaskName
    method: str
    image: ImageInfo
    maps: list[ExplainMap]
    latency_ms: float


class PredictJSON(BaseModel):
    """The JSON form of a predict request."""

    image: str = Field(description="the image file, base64-encoded (a data: URL prefix is allowed)")


class MainMetric(BaseModel):
    """A run's main metric: the one its Task selects the best checkpoint by (`Task.scores.primary`)."""

    name: str = Field(
        description="its name in metrics.json, as the run's Task defines it: e.g. `map` "
        "(COCO mAP@[.5:.95]) for detection, `mask_map` for Mask R-CNN"
    )
    value: float | None = Field(
        description="the run's value on validation data, a fraction in [0, 1]; "
        "null when its metrics.json lacks it"
    )


class Trust(BaseModel):
    """What `recog calibrate` left in the run: its temperature and its reject rule."""

    temperature: float | None = Field(
        description="the logits are divided by it before the soft-max; null: not calibrated"
    )
    reject_score: str | None = Field(
        description="the out-of-distribution score below whose threshold an image is "
        "`unknown` (`knn`, `mahalanobis`, `msp`, `energy`); null: every image gets a class"
    )
    reject_threshold: float | None = None
    reject_tpr: float | None = Field(
        default=None, description="the fraction of held-out in-distribution images kept"
    )


class RobustPoint(BaseModel):
    eps: float = Field(description="the attack's radius, in pixel units of [0, 1] images")
    value: float | None = Field(description="the main metric under the attack; null: not measured")


class Robustness(BaseModel):
    """What the last `recog attack` on the run measured (`RUN/robustness/robustness.json`)."""

    attack: str
    norm: str
    steps: int
    images: int
    metric: str = Field(description="the main metric, clean and under attack")
    clean: float | None
    robust: list[RobustPoint]
    trustworthy: bool = Field(
        description="false when a check found gradient masking or no usable gradient"
    )


class AttackResponse(BaseModel):
    """One uploaded image, its adversarial version and what the model answers on each."""

    model: str
    task: TaskName
    attack: str
    eps: float
    image: ImageInfo
    clean: dict[str, Any] = Field(description="the answer on the image the model saw")
    adversarial: dict[str, Any] = Field(description="the answer on the adversarial image")
    clean_image: str = Field(description="PNG data URL: the image the model saw, answer drawn")
    adversarial_image: str = Field(description="PNG data URL: the adversarial image, answer drawn")
    perturbation: str = Field(description="PNG data URL: the perturbation, magnified")
    changed: bool = Field(description="whether the shown answer changed")
    latency_ms: float


class ModelInfo(BaseModel):
    name: str
    task: TaskName
    architecture: str
    classes: list[str]
    input_size: int
    metrics: dict[str, float] = Field(description="from the run's metrics.json (validation data)")
    main_metric: MainMetric = Field(
        description="the metric the run's Task names as its main one, with its value; "
        "what the page shows for the model"
    )
    correction: Literal["label", "boxes"] | None = Field(
        description="what the page lets a user correct on a wrong answer, as the run's Task "
        "says: one class label, labelled boxes, or nothing"
    )
    top_k: bool = Field(description="whether predictions rank the classes (`top_k` applies)")
    selection: list[Literal["conf", "iou", "max_det"]] = Field(
        default_factory=list,
        description="which of conf, iou, max_det the model's predictions take (the Task says)",
    )
    max_batch: int
    trust: Trust = Field(description="the run's calibration and out-of-distribution rule")
    robustness: Robustness | None = Field(
        None, description="the last `recog attack` on the run; null: never attacked"
    )


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class StoreHealth(BaseModel):
    """The history store as its background writer last found it."""

    status: Literal["ok", "degraded"] = Field(
        description="degraded: the database does not answer; predictions are still answered "
        "and their history rows queued in memory"
    )
    detail: str | None = Field(None, description="why it is degraded, for people")
    queued: int = Field(description="history rows waiting to be written")
    dropped: int = Field(
        description="history rows lost since start: the queue was full, or the database "
        "refused the row (also `recog_history_dropped_total` in /metrics)"
    )


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="ok, or degraded when a part (the history store) is; the answer is "
        "200 either way: the server is alive and predicts"
    )
    models: list[str]
    store: StoreHealth


class FeedbackBox(BaseModel):
    label: str = Field(min_length=1, max_length=200)
    box: Box


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_id: str = Field(min_length=1, max_length=64)
    label: str | None = Field(
        default=None, min_length=1, max_length=200, description="the right class (classification)"
    )
    boxes: list[FeedbackBox] | None = Field(
        default=None,
        max_length=1000,
        description="the right objects (detection); an empty list means none",
    )
    comment: str | None = Field(default=None, max_length=2000)


class Feedback(BaseModel):
    id: int
    prediction_id: str
    created: str
    label: str | None = None
    boxes: list[FeedbackBox] | None = None
    comment: str | None = None


class HistoryItem(BaseModel):
    id: str
    created: str
    model: str
    task: str
    image: ImageInfo
    result: PredictionResult
    latency_ms: float
    feedback: Feedback | None = Field(default=None, description="the newest correction, if any")


class HistoryResponse(BaseModel):
    items: list[HistoryItem]

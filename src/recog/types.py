"""Canonical records every task speaks: `Sample`, `Target`, `Prediction`, `Batch`.

All tensors are torch tensors in the pixel space of the *original* image, so
a prediction can be drawn on the file the user gave without knowing which
resize the model saw.

- classification: `Target.labels` is a 0-d int64 tensor; `Prediction.scores`
  is a (C,) float tensor of probabilities over all classes and
  `Prediction.labels` the arg-max (0-d); `unknown` / `ood_score` when the run
  rejects out-of-distribution images.
- detection: `boxes` (N, 4) float xyxy in pixels, `labels` (N,) int64;
  predictions add `scores` (N,).
- semantic segmentation: `mask` (H, W) int64 class ids, 255 = ignore.
- instance segmentation: detection fields plus `masks` (N, H, W) bool.

A `Prediction` from `Recognizer.predict` also carries its source `path` (None
for an in-memory image), the run's `class_names`, and the `conf` it was
selected at (`Selection`; None: straight from `Task.predict`, every candidate
the model kept).  Drawing, tables and converters live above
(`recog.api.results`): this module stays free of PIL, pandas and supervision.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

from recog.errors import RecogError

# the fixed vocabularies live in a module without torch (the CLI parser reads them)
from recog.names import MetricName, TaskName  # noqa: F401  (re-exported)

IGNORE_INDEX = 255


#: the human names of metrics.json's keys (the report's cards, columns and run facts);
#: a task may rename one (`TaskScores.labels`: `per_class` is each task's own metric)
METRIC_LABELS: dict[str, str] = {
    "top1": "top-1 accuracy",
    "top5": "top-5 accuracy",
    "macro_f1": "macro F1",
    "weighted_f1": "weighted F1",
    "macro_precision": "macro precision",
    "macro_recall": "macro recall",
    "ece": "ECE (calibration error)",
    "nll": "val loss (NLL)",
    "map": "mAP@[.5:.95]",
    "map50": "mAP@0.5",
    "map75": "mAP@0.75",
    "map_small": "mAP small",
    "map_medium": "mAP medium",
    "map_large": "mAP large",
    "mar_100": "mAR@100",
    "box_ece": "box ECE (calibration error)",
    "mask_map": "mask mAP@[.5:.95]",
    "mask_map50": "mask mAP@0.5",
    "mask_map75": "mask mAP@0.75",
    "miou": "mIoU",
    "dice": "Dice (mean)",
    "pixel_acc": "pixel accuracy",
    "per_class_precision": "precision",
    "per_class_recall": "recall",
    "per_class_support": "images",
    "per_class_ece": "ECE",
    "per_class_ap50": "AP@0.5",
    "per_class_num_ground_truth": "boxes",
    "per_class_dice": "Dice",
    "per_class_box": "box AP",
    "num_samples": "validation images",
    "num_images": "validation images",
    "num_ground_truth": "validation boxes",
    "num_pixels": "validation pixels",
    "train_seconds": "training seconds",
    "eval_seconds": "evaluation seconds",
    "epochs_run": "epochs run",
    "best_epoch": "best epoch",
    "skipped_images": "unreadable images skipped",
    "data": "data",
}


@dataclass(frozen=True)
class TaskScores:
    """How a task's metrics are read and named: the one record the engine, the report,
    the CLI and the server ask (`Task.scores`)."""

    #: the metric that selects the best checkpoint and drives early stopping (higher is better)
    primary: MetricName
    #: the metrics a one-line summary shows, in order (`recog train` / `recog val`)
    headline: tuple[MetricName, ...]
    #: the validation metric that is a loss (lower is better), where the task's metrics
    #: compute one: the epoch table's val column beside the training loss
    val_loss: str | None = None
    #: the task's own names for metrics.json keys (over `METRIC_LABELS`); `per_class`
    #: names the per-class column's metric ("F1", "AP", "IoU")
    labels: dict[str, str] = field(default_factory=dict)

    def label(self, key: str) -> str:
        """The human name of metrics.json's `key` ("top-1 accuracy", "mAP@0.5"); else `key`."""
        return self.labels.get(key) or METRIC_LABELS.get(key, key)


@dataclass
class Target:
    """Ground truth for one image; which fields are set depends on the task."""

    labels: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    masks: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Target:
        return replace(
            self,
            **{
                f.name: getattr(self, f.name).to(device)
                for f in fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)
            },
        )


@dataclass
class Prediction(Target):
    """Model output for one image: the `Target` fields plus `scores`.

    With a run's out-of-distribution rule (`recog.confidence`), `ood_score` is
    the image's score (higher: more like the training data) and `unknown` is
    True when it fell below the rule's threshold: the answer is "none of
    these", and `labels`/`scores` only say which class was nearest.
    """

    scores: torch.Tensor | None = None
    unknown: bool = False
    ood_score: float | None = None
    #: the image file (or URL) predicted; None for an array, tensor or PIL image
    path: str | None = None
    #: the run's classes, so a prediction names its labels on its own
    class_names: list[str] | None = field(default=None, repr=False)
    #: the score threshold this prediction was selected at (`Task.select`); None: unselected
    conf: float | None = None

    def to_dict(self, class_names: list[str] | None = None) -> dict[str, Any]:
        """JSON-ready form (lists of floats and ints, its `path`, class names when known)."""
        class_names = self.class_names if class_names is None else class_names
        out: dict[str, Any] = {} if self.path is None else {"path": self.path}
        for f in fields(Prediction):  # a subclass's extras (Result.source) are not the answer
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                out[f.name] = value.detach().cpu().tolist()
        if self.ood_score is not None:
            out["unknown"] = bool(self.unknown)
            out["ood_score"] = float(self.ood_score)
        if class_names is not None and self.labels is not None:
            labels = self.labels.detach().cpu()
            out["names"] = (
                class_names[int(labels)]
                if labels.ndim == 0
                else [class_names[int(i)] for i in labels]
            )
        return out


@dataclass(frozen=True)
class Selection:
    """Which of a model's candidates a prediction keeps (`recog predict --conf --iou --max-det`).

    `conf`: the lowest score kept; `iou`: class-aware NMS at this overlap, after the
    model's own; `max_det`: the most objects per image, best first.  None: the task's
    default (`Task.select` says what each means for its task, or refuses it).
    """

    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None

    def __post_init__(self) -> None:
        if self.conf is not None and not 0.0 <= self.conf <= 1.0:
            raise RecogError(f"--conf {self.conf}: must be in [0, 1]")
        if self.iou is not None and not 0.0 < self.iou <= 1.0:
            raise RecogError(f"--iou {self.iou}: must be in (0, 1]")
        if self.max_det is not None and self.max_det < 1:
            raise RecogError(f"--max-det {self.max_det}: must be 1 or more")

    def given(self) -> list[str]:
        """The options set, as flags (`--conf`, ...), for a task that refuses them."""
        return [f"--{k.replace('_', '-')}" for k in ("conf", "iou", "max_det")
                if getattr(self, k) is not None]  # fmt: skip


@dataclass
class ExplainTarget:
    """One thing an explanation is about, in model-input pixels.

    classification: the class `label`; detection: the detected `box` (xyxy)
    of class `label`; semantic segmentation: the `region` (H, W) bool that
    was predicted as class `label`.  `name` is what a user reads ("bees",
    "raccoon 0.91 #1", "membrane").
    """

    name: str
    label: int
    box: torch.Tensor | None = None
    region: torch.Tensor | None = None


@dataclass
class Sample:
    """One image as the data layer yields it.

    image: (3, H, W) uint8 RGB, already decoded (and possibly transformed).
    orig_size: (H, W) of the file on disk, so predictions can be mapped back.
    meta: task-specific extras, e.g. the letterbox `scale` and the original-pixel
        `truth` of a detection sample.
    """

    image: torch.Tensor
    target: Target
    path: str = ""
    orig_size: tuple[int, int] = (0, 0)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """What `Task.collate` hands the engine.

    images: (B, 3, H, W) uint8; the task normalizes them on the device.
    targets: task-specific training targets; the engine only moves them with `.to(device)`.
    truth: one `Target` per image in original-image pixels, for metrics (stays on the CPU).
    meta: per-image bookkeeping (paths, original sizes) the engine never reads.
    """

    images: torch.Tensor
    targets: Any
    truth: list[Target] = field(default_factory=list)
    meta: list[dict[str, Any]] = field(default_factory=list)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        targets = self.targets
        if isinstance(targets, torch.Tensor):
            targets = targets.to(device, non_blocking=non_blocking)
        elif isinstance(targets, list):
            targets = [t.to(device) if hasattr(t, "to") else t for t in targets]
        return Batch(
            self.images.to(device, non_blocking=non_blocking), targets, self.truth, self.meta
        )

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class DataFacts:
    """What the recipe measures about a dataset before choosing a setting.

    Sides are in pixels of the original images, over a sample of the training
    split: `median_side` the shorter side (classification crops it), `median_long_side`
    the longer (detection letterboxes it).  `objects_per_image` and
    `median_box_frac` (box side / image long side) are detection's; `mask_side`
    is segmentation's mask resolution.
    """

    task: TaskName
    name: str
    n_train: int
    n_val: int
    class_names: tuple[str, ...]
    median_side: int
    median_long_side: int
    objects_per_image: float = 0.0
    median_box_frac: float = 0.0
    mask_side: int = 0
    #: how the split was drawn when it says more than the fraction (`--group-by`); "" otherwise
    split: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def per_class(self) -> float:
        return self.n_train / max(1, self.num_classes)


#: the file suffix of an uploaded image, by the media type sniffed from its bytes
_SUFFIX = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
}


def safe_file_name(name: str) -> str:
    """`name` (a class, a model) as one file or folder name: no separators, no leading dot
    (`model` when nothing is left)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "model"


@dataclass(frozen=True)
class CorrectedExample:
    """One prediction with a user's newest correction, and the uploaded image bytes when kept.

    `label` is the right class (classification); `boxes` the right objects
    (detection), `[{"label": str, "box": [x1, y1, x2, y2]}]` float xyxy in
    pixels of the uploaded image, `[]` when there are none.  `image` is None
    unless the server kept images (`recog serve --keep-images`).
    """

    prediction_id: str
    model: str
    task: str
    image_sha256: str
    width: int
    height: int
    label: str | None
    boxes: list[dict[str, Any]] | None
    media_type: str | None
    image: bytes | None

    @property
    def file_name(self) -> str:
        """The image's file name in an exported training set: its hash, and its type's suffix."""
        return self.image_sha256[:20] + _SUFFIX.get(self.media_type or "", ".img")

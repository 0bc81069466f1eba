"""Typed run configuration (`TrainConfig`) and its YAML round-trip.

A run's `config.yaml` is exactly `TrainConfig.to_dict()`; together with
`labels.json` and `model.safetensors` it is enough to rebuild the model.
Fixed vocabularies are `Literal`s here, once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

import yaml

from recog.errors import RecogError

CONFIG_VERSION = 1

Optimizer = Literal["sgd", "adamw"]
Schedule = Literal["cosine", "onecycle", "constant"]
Augment = Literal["none", "light", "standard", "strong"]
AutoAugment = Literal["none", "randaugment", "trivialaugment"]
Cache = Literal["auto", "on", "off"]
Amp = Literal["auto", "on", "off"]
SegLoss = Literal["ce", "dice", "ce_dice"]


DEFAULT_EPOCHS = 30
DEFAULT_BATCH_SIZE = 32


@dataclass
class TrainConfig:
    """Everything `recog train` needs; defaults are what a user gets without flags."""

    data: str = "digits"
    task: str | None = None  # inferred from data / model when None
    model: str | None = None  # None: the task's default (cnn, yolo_n)
    model_args: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    freeze_backbone: bool = False
    img_size: int | None = None  # None: the dataset's or the model's default
    epochs: int | None = None  # None: the model's default, else DEFAULT_EPOCHS
    batch_size: int | None = None  # None: the model's default, else DEFAULT_BATCH_SIZE
    optimizer: Optimizer = "adamw"
    lr: float | None = (
        None  # None: the model's default, else 1e-3 adamw / 0.05 sgd (scaled by batch / 64)
    )
    weight_decay: float | None = None  # None: the model's default, else 0.05
    momentum: float = 0.9
    schedule: Schedule = "cosine"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    amp: Amp = "auto"
    accumulate: int = 1
    clip_grad: float | None = None
    ema: float | None = None  # EMA decay, e.g. 0.999
    patience: int | None = None  # early stopping, in epochs without improvement
    seed: int = 0
    deterministic: bool = False
    workers: int = 0
    device: str = "auto"
    # data
    val_split: float = 0.2
    augment: Augment = "standard"
    auto_augment: AutoAugment = "none"
    hflip: float | None = None  # None: the dataset's default (0.5, or 0 for digits)
    mixup: float = 0.0
    cutmix: float = 0.0
    balanced: bool = False
    mosaic: float | None = None  # detection: chance of a 4-image mosaic (None: model default)
    mosaic_off_epochs: int = 10  # detection: the last epochs train without mosaic
    cache: Cache = "auto"
    strict: bool = False
    # segmentation
    classes: str | None = None  # comma-separated class names of mask data (index = pixel value)
    seg_loss: SegLoss = "ce_dice"
    class_weights: str | None = None  # comma-separated per-class loss weights
    elastic: float = 0.0  # probability of an elastic deformation (cells, membranes)
    # output
    out: str | None = None
    name: str | None = None
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> TrainConfig:
        hints = get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RecogError(f"{source}: unknown setting {unknown[0]!r}")
        for key, value in values.items():
            allowed = get_args(hints[key])
            if allowed and all(isinstance(a, str) for a in allowed) and value not in allowed:
                raise RecogError(
                    f"{source}: {key} must be one of {', '.join(allowed)}, not {value!r}"
                )
        return cls(**values)

    def save(self, path: Path) -> None:
        from recog.engine.checkpoint import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            values = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RecogError(f"{path}: cannot read config ({exc.__class__.__name__})") from exc
        if not isinstance(values, dict):
            raise RecogError(f"{path}: not a recog config (expected a mapping)")
        return cls.from_dict(values, source=str(path))

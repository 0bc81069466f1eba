"""Typed run configuration (`TrainConfig`) and its YAML round-trip.

A `TrainConfig` as the user writes it may leave fields unset (None): those
are left to the recipe (`recog.recipe.resolve`), which fills every one of
them from facts about the data, the model and the machine.  A run's
`config.yaml` is exactly the resolved `TrainConfig.to_dict()`, with no unset
field; `require_resolved` is how the engine, tasks and loaders insist on it.
Options that are off hold their off value (0, "none"), never None.
Fixed vocabularies are `Literal`s here, once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from recog.errors import RecogError
from recog.names import TaskName
from recog.yaml_text import dump_yaml, load_yaml_file

CONFIG_VERSION = 3

Optimizer = Literal["sgd", "adamw"]
Schedule = Literal["cosine", "onecycle", "constant"]
Augment = Literal["none", "light", "standard", "strong"]
AutoAugment = Literal["none", "randaugment", "trivialaugment"]
Cache = Literal["auto", "on", "off"]
Amp = Literal["auto", "on", "off"]
SegLoss = Literal["ce", "dice", "ce_dice"]
AdvTrain = Literal["none", "pgd", "fgsm-rs", "trades"]
Log = Literal["none", "tensorboard", "mlflow", "tensorboard,mlflow", "mlflow,tensorboard"]


#: the value of an optional feature that is off (weights, class_weights)
NONE = "none"


@dataclass
class TrainConfig:
    """Everything `recog train` needs; defaults are what a user gets without flags."""

    data: str = "digits"
    task: TaskName | None = None  # None: inferred from the data or the model
    model: str | None = None  # None: the recipe's choice for the task and data
    model_args: dict[str, Any] = field(default_factory=dict)
    # None: the model's ImageNet weights where their file is on this machine (the recipe),
    # "imagenet": those, "none": from scratch; or a file, or torchvision / timm / smp caches
    weights: str | None = None
    freeze_backbone: bool = False
    # fine-tuning (recog.engine.optim): epochs that train the new head alone before the whole
    # network (0: off), and the rate of every layer but the head, as a fraction of lr
    head_epochs: float | None = None
    backbone_lr: float | None = None
    img_size: int | None = None
    # budget: give at most one of epochs / steps; time bounds the wall clock
    epochs: int | None = None
    steps: int | None = None  # optimizer steps in all
    time: float | None = None  # seconds of training (0: no limit); `--time 10m`
    batch_size: int | None = None
    optimizer: Optimizer = "adamw"
    lr: float | None = None  # peak learning rate
    weight_decay: float | None = None
    momentum: float = 0.9
    schedule: Schedule | None = None
    warmup_epochs: float | None = None
    label_smoothing: float | None = None
    amp: Amp = "auto"
    # BatchNorm statistics over the global batch under torchrun (SyncBatchNorm; CUDA only):
    # auto is on for CUDA with more than one process
    sync_bn: Amp = "auto"
    accumulate: int = 1
    clip_grad: float | None = None  # 0: off
    ema: float | None = None  # EMA decay of the weights, e.g. 0.999; 0: off
    patience: int | None = None  # early stopping, epochs without improvement; 0: off
    seed: int = 0
    deterministic: bool = False
    workers: int = 0
    device: str = "auto"
    # data
    val_split: float = 0.2
    #: `--group-by`: metadata columns (`date,location`) or a file-name pattern with a (group)
    #: that keeps each session whole on one side of the split; "" splits image by image
    group_by: str = ""
    augment: Augment | None = None
    auto_augment: AutoAugment = "none"
    hflip: float | None = None
    min_scale: float | None = None  # smallest crop / scale of the training augmentation
    crop_pct: float | None = None  # classification: centre-crop fraction at evaluation
    mixup: float = 0.0
    cutmix: float = 0.0
    balanced: bool = False
    mosaic: float | None = None  # detection: chance of a 4-image mosaic
    mosaic_off_epochs: int | None = None  # detection: the last epochs train without mosaic
    cache: Cache = "auto"
    strict: bool = False
    classes: list[str] | None = None  # class names in label order (mask values for masks)
    # segmentation
    seg_loss: SegLoss = "ce_dice"
    class_weights: str | None = None  # comma-separated per-class loss weights; "none": equal
    elastic: float | None = None  # probability of an elastic deformation (cells, membranes)
    # adversarial training (recog.robust.training): the attack each training batch meets
    adv_train: AdvTrain = "none"
    adv_eps: float = 8 / 255  # L-inf radius in [0, 1] pixel units; `--adv-eps 8/255`
    adv_steps: int = 10  # PGD / TRADES steps (fgsm-rs takes one)
    adv_mix: float = 0.0  # weight of the clean images' loss (0: attacked only, Madry et al.)
    # knowledge distillation (recog.distill): a trained run of the same task and classes
    teacher: str = NONE  # the teacher's run directory; "none": no distillation
    distill_weight: float = 0.5  # loss = (1 - w) * task loss + w * distillation term
    distill_temperature: float = 4.0  # softens classify logits and detection DFL bins
    # output
    out: str | None = None
    name: str | None = None
    # experiment tracking (recog.engine.tracking): RUN/tensorboard/, an MLflow run
    log: Log = "none"
    # MLflow tracking URI; auto: MLFLOW_TRACKING_URI, else sqlite beside the run (recorded resolved)
    log_uri: str = "auto"
    # input normalization, per channel: the pretrained file's own (recog.models.pretrained),
    # else the model's; every task, export and server reads it from the run's config
    mean: list[float] | None = None
    std: list[float] | None = None
    #: the pretrained file the run started from: name, source, path, sha256 ({}: none)
    pretrained: dict[str, str] = field(default_factory=dict)
    #: what the run ran on (filled by the recipe, never by the user)
    versions: dict[str, str] = field(default_factory=dict)
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        """Every value is of its field's type and in its range, or a RecogError naming it."""
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                # a field that is never unset (`data: null` in an edited config.yaml)
                if type(None) not in get_args(hints[f.name]):
                    raise RecogError(f"{f.name} must be given a value, not null (None)")
                continue
            setattr(self, f.name, _checked(f.name, value, hints[f.name]))
        if self.class_weights is not None:
            parse_class_weights(self.class_weights)
        for key in {"num_classes", "img_size"} & set(self.model_args):
            # given to every builder by recog itself (recog.models.arguments checks the rest)
            raise RecogError(f"model_args: {key} is not a model argument (the data, --img-size)")
        # a run is named, never placed, by --name (issue 33: `--name ../../x` left runs/)
        if not self.data.strip():
            raise RecogError("data must name a dataset, not an empty text")
        if self.name is not None and (
            not self.name.strip()
            or self.name in (".", "..")
            or any(c in self.name for c in "/\\\0")
        ):
            raise RecogError(
                f"name must be a plain folder name (no '/', '\\', '.' or '..'), not {self.name!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain values (YAML-safe): the task as its name."""
        values = dataclasses.asdict(self)
        if values["task"] is not None:
            values["task"] = str(values["task"])
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RecogError(f"{source}: unknown setting {unknown[0]!r}")
        try:
            return cls(**values)
        except RecogError as exc:
            raise RecogError(f"{source}: {exc}") from None

    def unset(self) -> list[str]:
        """Names of the fields left to the recipe (None)."""
        return [k for k, v in self.to_dict().items() if v is None]

    def save(self, path: Path) -> None:
        # imported here: recog.io imports torch, and the CLI parser reads this module
        from recog.io import atomic_write_text

        atomic_write_text(path, dump_yaml(self.to_dict()))

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        values = load_yaml_file(Path(path))
        if not isinstance(values, dict):
            raise RecogError(f"{path}: not a recog config (expected a mapping)")
        return cls.from_dict(values, source=str(path))


#: the largest training budgets: 100,000 epochs is beyond any published schedule (ImageNet
#: trains 90-600), 10**8 optimizer steps is years on one GPU, and 30 days is a long run
MAX_EPOCHS, MAX_STEPS, MAX_TIME_S = 100_000, 10**8, 30 * 24 * 3600

#: allowed ranges of numeric fields: (low, high, low inclusive, high inclusive); None: open
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    # 4096 px: 3x the largest input any recog model is trained at (YOLO's P6 models at
    # 1280) and the bound `recog export --img-size` keeps; 16384 (3 GB as one float image,
    # tens of GB of activations) made `recog predict` of an edited config.yaml run out of memory
    "img_size": (1, 4096, True, True),
    # budgets: bounds far above any real run, below what would only run until killed
    # (`--epochs 99999999999999999999999` once trained, its lr at 8e-25 by epoch 2)
    "epochs": (1, MAX_EPOCHS, True, True),
    "steps": (1, MAX_STEPS, True, True),
    "time": (0, MAX_TIME_S, True, True),
    "batch_size": (1, 65536, True, True),
    "lr": (0, 10, True, True),  # 0 is a frozen run (a test of early stopping uses it)
    "weight_decay": (0, None, True, False),
    "momentum": (0, 1, True, False),
    "warmup_epochs": (0, None, True, False),
    "label_smoothing": (0, 1, True, False),
    "accumulate": (1, 4096, True, True),
    "clip_grad": (0, None, True, False),
    "ema": (0, 1, True, False),
    "patience": (0, None, True, False),
    "seed": (0, 2**32 - 1, True, True),
    "workers": (0, 256, True, True),
    "val_split": (0, 1, False, False),
    "hflip": (0, 1, True, True),
    "min_scale": (0, 1, False, True),
    "crop_pct": (0, 1, False, True),
    "mixup": (0, None, True, False),
    "cutmix": (0, None, True, False),
    "mosaic": (0, 1, True, True),
    "mosaic_off_epochs": (0, None, True, False),
    "elastic": (0, 1, True, True),
    "adv_eps": (0, 1, False, True),
    "adv_steps": (1, 1000, True, True),
    "adv_mix": (0, 1, True, False),
    "distill_weight": (0, 1, False, True),
    "distill_temperature": (0, 100, False, True),
    "head_epochs": (0, 1000, True, True),
    "backbone_lr": (0, 1, True, True),
}


def _checked(key: str, value: Any, hint: Any) -> Any:
    """`value` as field `key` holds it (an int given for a float is a float), or a RecogError."""
    union = get_origin(hint) in (Union, UnionType)
    options = [a for a in get_args(hint) if a is not type(None)] if union else [hint]
    literal = [a for o in options if get_origin(o) is Literal for a in get_args(o)]
    if literal:
        if value not in literal:
            raise RecogError(f"{key} must be one of {', '.join(map(str, literal))}, not {value!r}")
        return value
    kind = options[0]
    if kind is TaskName:
        if not isinstance(value, str) or value not in set(TaskName):
            raise RecogError(f"task must be one of {', '.join(TaskName)}, not {value!r}")
        return TaskName(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise RecogError(f"{key} must be true or false, not {value!r}")
        return value
    if kind is float and isinstance(value, str):
        try:  # YAML 1.1 reads `1e-3` (no dot) as text
            value = float(value)
        except ValueError:
            pass
    if kind in (int, float):
        number_ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not number_ok or (kind is int and not isinstance(value, int)):
            raise RecogError(
                f"{key} must be {'a whole' if kind is int else 'a'} number, not {value!r}"
            )
        if value != value or value in (float("inf"), float("-inf")):
            raise RecogError(f"{key} must be a finite number, not {value!r}")
        if key in RANGES:
            low, high, low_in, high_in = RANGES[key]
            below = low is not None and (value < low or (value == low and not low_in))
            above = high is not None and (value > high or (value == high and not high_in))
            if below or above:
                raise RecogError(f"{key} must be {_describe_range(RANGES[key])}, not {value!r}")
        return float(value) if kind is float else value
    if kind is str:
        if not isinstance(value, str):
            raise RecogError(f"{key} must be text, not {value!r}")
        return value
    origin = get_origin(kind)
    if origin is list and get_args(kind) == (float,):
        # a normalization: three finite numbers (std > 0), as run configs and flags give them
        ok = isinstance(value, list) and len(value) == 3
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ok = ok and all(v == v and abs(v) < 1e6 for v in value)
        if not ok or (key == "std" and min(value) <= 0):
            raise RecogError(f"{key} must be three finite numbers (one per channel), not {value!r}")
        return [float(v) for v in value]
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RecogError(f"{key} must be a list of names, not {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise RecogError(f"{key} must be a mapping, not {value!r}")
        return value
    return value


def _describe_range(rule: tuple[float | None, float | None, bool, bool]) -> str:
    low, high, low_in, high_in = rule
    parts = []
    if low is not None:
        parts.append(f"{'at least' if low_in else 'greater than'} {low:g}")
    if high is not None:
        parts.append(f"{'at most' if high_in else 'less than'} {high:g}")
    return " and ".join(parts)


#: the fields settled last: the budget, after timing real steps (`recipe.resolve_budget`),
#: and the run directory
BUDGET_FIELDS = frozenset({"epochs", "steps", "time", "warmup_epochs", "patience", "out", "name"})


def require_resolved(cfg: TrainConfig, where: str, *, budget: bool = True) -> TrainConfig:
    """`cfg` itself, after checking that the recipe left no field unset.

    `budget=False` allows the budget fields to be still open (data loading and
    model building happen before the budget is timed).
    """
    missing = [k for k in cfg.unset() if budget or k not in BUDGET_FIELDS]
    if missing:
        raise RecogError(f"{where}: the run config is not resolved ({', '.join(missing)} unset)")
    return cfg


def parse_duration(text: str | float | int) -> float:
    """`90`, `90s`, `10m`, `1.5h`, `1h30m` -> seconds (> 0)."""
    import re

    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip().lower()
        parts = re.fullmatch(
            r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", raw
        )
        if not raw or parts is None or not any(parts.groups()):
            raise RecogError(f"--time: expected a duration such as 90s, 10m or 1h, not {text!r}")
        h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
        seconds = h * 3600 + m * 60 + sec
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise RecogError(f"--time: must be a positive duration, not {text!r}")
    if seconds > MAX_TIME_S:
        raise RecogError(f"--time: at most {MAX_TIME_S // 86400} days ({MAX_TIME_S} s), not {text!r}")
    return seconds


def parse_class_weights(text: str, n: int | None = None) -> list[float] | None:
    """`--class-weights 1,2.5,1` -> finite non-negative numbers, not all 0 (`n` of them when
    `n` is given); None for "none"."""
    if text.strip().lower() == NONE:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise RecogError(f"--class-weights: expected comma-separated numbers, not {text!r}") from None
    if not all(0 <= v < float("inf") for v in values) or not any(values):
        raise RecogError(
            f"--class-weights: weights must be finite, non-negative and not all 0, not {text!r}"
        )
    if n is not None and len(values) != n:
        raise RecogError(
            f"--class-weights: {len(values)} weights given for {n} classes (one per class)"
        )
    return values


def parse_eps(text: str | float | int, *, flag: str = "--eps", at_most_one: bool = True) -> float:
    """`0.03`, `8/255` -> a perturbation radius in [0, 1] pixel units (> 0; at most 1 with
    `at_most_one`, as an L-inf radius must be)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text).strip()
        try:
            if "/" in raw:
                top, bottom = raw.split("/", 1)
                value = float(top) / float(bottom)
            else:
                value = float(raw)
        except (ValueError, ZeroDivisionError):
            raise RecogError(
                f"{flag}: expected a number such as 0.03 or 8/255, not {text!r}"
            ) from None
    if not 0 < value < float("inf") or (at_most_one and value > 1):
        bound = (
            "greater than 0 and at most 1 (pixels in [0, 1])" if at_most_one else "greater than 0"
        )
        raise RecogError(f"{flag}: must be {bound}, not {text!r}")
    return value

"""The options of `recog train`, declared once; what a user asks and what a run used (one job: each option's one declaration, with its help and range, hence over 450 lines).

`TrainRequest` is what a user asks; `TrainConfig`, what a run used (its config.yaml).

Each option is one field of `TrainConfig` with its type, and an `Opt` beside
it: the help text, the `recog train --help` heading it stands under, its
range, its unit and its default rule (a fixed value, or what the recipe
chooses it from).  Everything else is generated from that declaration: the
CLI's flags, groups, help and checks (`recog.cli.train_options`), the YAML
load and its checks (`TrainRequest.from_dict`, `TrainConfig.load`).

Two types, because "left to the recipe" must never reach a run:
- `TrainRequest`: the options a user gave (CLI, YAML, Python API), each
  checked against its declaration; an option left out reads as its fixed
  default, or None where the recipe decides (`request.img_size is None`).
- `TrainConfig`: the resolved record, typed without Optional; `recog.recipe`
  makes it from a request, once.  Off values are their off value (0, "none").
Fixed vocabularies are `Literal`s here, once.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping
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

#: the largest training budgets: 100,000 epochs is beyond any published schedule (ImageNet
#: trains 90-600), 10**8 optimizer steps is years on one GPU, and 30 days is a long run
MAX_EPOCHS, MAX_STEPS, MAX_TIME_S = 100_000, 10**8, 30 * 24 * 3600

#: the headings of `recog train --help`, in order; each option names one
GROUPS = (
    "data",
    "model",
    "fine-tuning",
    "schedule",
    "loss",
    "augmentation",
    "hardware and reproducibility",
    "robustness (adversarial training)",
    "distillation",
    "output and tracking",
)

#: the default rule of an option the recipe chooses, unless its `Opt` says more
FROM_THE_DATA = "from the data"


@dataclass(frozen=True)
class Range:
    """Allowed values of a number: `low`/`high` (None: open), each inclusive or not."""

    low: float | None = None
    high: float | None = None
    low_in: bool = True
    high_in: bool = True

    def holds(self, value: float) -> bool:
        low, high = self.low, self.high
        below = low is not None and (value < low or (value == low and not self.low_in))
        above = high is not None and (value > high or (value == high and not self.high_in))
        return not (below or above)

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'at least' if self.low_in else 'greater than'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'at most' if self.high_in else 'less than'} {self.high:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Opt:
    """What one option is, beside its field: everything but its type and fixed default."""

    group: str
    help: str
    #: the default as `--help` says it, where the field's fixed value does not say it all;
    #: for an option the recipe chooses, what it chooses it from ("from the data: ...")
    rule: str = ""
    range: Range | None = None
    unit: str = ""
    metavar: str = ""
    #: given as text and turned into the field's value (`10m` -> 600.0, `8/255`)
    parse: str = ""
    #: the recipe chooses it when the user does not (the request reads None)
    chosen: bool = False


#: fields of the record that are never options (what the run ran on, what it loaded)
RECORD_ONLY = frozenset({"version", "versions", "pretrained", "mean", "std"})


def option(
    default: Any = dataclasses.MISSING,
    *,
    factory: Any = dataclasses.MISSING,
    group: str,
    help: str,
    rule: str = "",
    range: Range | None = None,
    unit: str = "",
    metavar: str = "",
    parse: str = "",
) -> Any:
    """A field of the record and its `Opt`.  Without a default, the recipe chooses it."""
    chosen = default is dataclasses.MISSING and factory is dataclasses.MISSING
    if group not in GROUPS:
        raise ValueError(f"option group {group!r} is not one of GROUPS")
    meta = {"option": Opt(group, help, rule or (FROM_THE_DATA if chosen else ""), range, unit,
                          metavar, parse, chosen)}  # fmt: skip
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    if chosen:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def _record(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING) -> Any:
    """A field of the record that is no option (filled by the recipe or recog itself)."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory)
    return field(default=default) if default is not dataclasses.MISSING else field()


_FRACTION = Range(0, 1, True, False)
_POSITIVE = Range(0, None, True, False)


@dataclass(kw_only=True)
class TrainConfig:
    """What a run used: every option resolved (config.yaml), typed without Optional.

    Made by `recog.recipe.resolve` from a `TrainRequest`, or read back from a
    run's config.yaml (`load`).  `out` and `name` are "" only between the
    recipe and the run's placement (`recog.api.training`), which fills them.
    """

    # ---------------------------------------------------------------- data
    data: str = option("digits", group="data", metavar="PATH",
        help="digits, shapes:..., a class-folder root (train/ + val/, or <class>/ split by "
        "--val-split), a path,label CSV, or a COCO / VOC / YOLO / mask-folder set")  # fmt: skip
    task: TaskName = option(group="data", help="what to recognize",
                            rule="inferred from the data or the model")  # fmt: skip
    classes: list[str] = option(group="data", metavar="A,B,...", parse="names",
        help="comma-separated class names in label order (mask folders: of the values 0, 1, ...)")  # fmt: skip
    val_split: float = option(0.2, group="data", range=Range(0, 1, False, False),
        help="fraction held out for validation when the data has no val/ split "
        "(seeded by --seed, stratified per class)")  # fmt: skip
    #: metadata columns (`date,location`) or a file-name pattern with a (group) that keeps
    #: each session whole on one side of the split; "" splits image by image
    group_by: str = option("", group="data",
        help="keep each session whole on one side of the split: metadata columns of a "
        "path,label,... CSV (date,location) or a file-name pattern whose (group) names the "
        "session ('^(\\d+)_': 041_066.png -> 041)")  # fmt: skip
    cache: Cache = option("auto", group="data", rule="auto: on for up to 20,000 images",
                          help="decode and resize the images once into memory")  # fmt: skip
    strict: bool = option(False, group="data",
                          help="fail on the first corrupt image instead of skipping it")  # fmt: skip
    balanced: bool = option(False, group="data",
                            help="sample the classes equally often (classification)")  # fmt: skip
    # --------------------------------------------------------------- model
    model: str = option(group="model", metavar="NAME",
        rule="from the data: the task's default model for the images' size",
        help="registry name or timm:<name>; `recog models` lists them with their task and size")  # fmt: skip
    model_args: dict[str, Any] = option(factory=dict, group="model", metavar="KEY=VALUE",
        parse="pairs", help="builder options as key=value, e.g. width=64 depth=4")  # fmt: skip
    #: "imagenet": the model's ImageNet file from its package, "none": from scratch; or a
    #: file, or the torchvision / timm / smp caches
    weights: str = option(group="model", metavar="WEIGHTS",
        rule="from the data: imagenet where the model has ImageNet weights on this machine "
        "(the task's default model does), else none, from scratch",
        help="imagenet: the model's ImageNet file from its pip package (`recog weights` lists "
        "them); none: from scratch; a local file (safetensors or state dict); or `torchvision`, "
        "`timm`, `smp` for the library's file in the local torch / Hugging Face cache; nothing "
        "is downloaded")  # fmt: skip
    freeze_backbone: bool = option(False, group="model",
                                   help="train the head only (with --weights)")  # fmt: skip
    img_size: int = option(group="model", unit="px", help="input size in pixels",
        # 4096 px: 3x the largest input any recog model is trained at (YOLO's P6 models at
        # 1280) and the bound `recog export --img-size` keeps; 16384 (3 GB as one float image,
        # tens of GB of activations) made `recog predict` of an edited config.yaml run out of
        # memory
        range=Range(1, 4096),
        rule="from the data: the images' median size, capped per task and device")  # fmt: skip
    # ---------------------------------------------------------- fine-tuning
    head_epochs: float = option(group="fine-tuning", unit="epochs", range=Range(0, 1000),
        rule="from the data: 1 when fine-tuning pretrained weights, else 0, off",
        help="fine-tuning: epochs that train the new head alone before the whole network "
        "(0: off)")  # fmt: skip
    backbone_lr: float = option(group="fine-tuning", range=Range(0, 1),
        rule="from the data: 1, the same rate as the head",
        help="fine-tuning: the rate of every layer but the head, as a fraction of --lr")  # fmt: skip
    # ------------------------------------------------------------ schedule
    # budgets: bounds far above any real run, below what would only run until killed
    # (`--epochs 99999999999999999999999` once trained, its lr at 8e-25 by epoch 2)
    epochs: int = option(group="schedule", unit="epochs", range=Range(1, MAX_EPOCHS),
        rule="from the data: a budget in steps planned from the data size, capped to fit "
        "15 min on this machine", help="training epochs")  # fmt: skip
    steps: int = option(group="schedule", unit="steps", range=Range(1, MAX_STEPS),
        rule="from --epochs", help="training budget in optimizer steps, instead of --epochs")  # fmt: skip
    time: float = option(group="schedule", unit="s", range=Range(0, MAX_TIME_S), rule="no limit",
        metavar="DURATION", parse="duration",
        help="fit the run into this much training time, e.g. 90s, 10m, 1h "
        "(the schedule follows the clock)")  # fmt: skip
    batch_size: int = option(group="schedule", unit="images", range=Range(1, 65536),
        rule="from the data: >= 8 steps an epoch, at most the task's 16 or 32",
        help="images per step (per process under torchrun)")  # fmt: skip
    optimizer: Optimizer = option("adamw", group="schedule", help="the optimizer")
    # 0 is a frozen run (a test of early stopping uses it)
    lr: float = option(group="schedule", range=Range(0, 10),
        rule="from the data: the model's, else the task's, square-root scaled to the batch",
        help="peak learning rate")  # fmt: skip
    weight_decay: float = option(group="schedule", range=_POSITIVE,
        rule="the model's, else the task's (0.05 classify, 5e-4 detect, 1e-4 segment)",
        help="decoupled weight decay (AdamW) or L2 (SGD)")  # fmt: skip
    momentum: float = option(0.9, group="schedule", range=_FRACTION, help="SGD momentum")
    schedule: Schedule = option(group="schedule", rule="cosine",
                                help="learning-rate schedule after the warm-up")  # fmt: skip
    warmup_epochs: float = option(group="schedule", unit="epochs", range=_POSITIVE,
        rule="from the data: 5%% of the run's steps",
        help="linear warm-up, in epochs (fractions allowed)")  # fmt: skip
    accumulate: int = option(1, group="schedule", range=Range(1, 4096),
                             help="gradient accumulation: batches per optimizer step")  # fmt: skip
    clip_grad: float = option(group="schedule", range=_POSITIVE, rule="0, off",
                              help="clip the gradient norm at this value (0: off)")  # fmt: skip
    ema: float = option(group="schedule", range=_FRACTION,
        rule="from the data for detection (a tenth of the run's steps), else 0, off",
        help="keep an exponential moving average of the weights with this decay, e.g. 0.999 "
        "(0: off)")  # fmt: skip
    patience: int = option(group="schedule", unit="epochs", range=_POSITIVE,
        rule="from the data: half the epochs, at least 5; off under --time",
        help="stop after this many epochs without improvement (0: off)")  # fmt: skip
    # ---------------------------------------------------------------- loss
    label_smoothing: float = option(group="loss", range=_FRACTION,
        rule="the task's (0.1 classify, else 0)", help="label smoothing of the classification loss")  # fmt: skip
    seg_loss: SegLoss = option("ce_dice", group="loss",
                               help="segmentation loss: cross-entropy, Dice, or their sum")  # fmt: skip
    #: comma-separated per-class loss weights; "none": equal
    class_weights: str = option(group="loss", rule="none, equal weights",
                                help="segmentation: comma-separated loss weight per class")  # fmt: skip
    # -------------------------------------------------------- augmentation
    augment: Augment = option(group="augmentation",
        rule="from the data: strong for segmentation sets under 100 images, else standard",
        help="strength of the training augmentation")  # fmt: skip
    auto_augment: AutoAugment = option("none", group="augmentation",
        help="an automatic augmentation policy on top (classification)")  # fmt: skip
    hflip: float = option(group="augmentation", range=Range(0, 1),
        rule="from the data: 0.5; 0 for digits", help="horizontal-flip probability")  # fmt: skip
    min_scale: float = option(group="augmentation", range=Range(0, 1, False, True),
        rule="from the data: per dataset and --augment",
        help="smallest crop (classification) or scale (detection) of the augmentation, "
        "as a fraction")  # fmt: skip
    crop_pct: float = option(group="augmentation", range=Range(0, 1, False, True),
        rule="from the data: per dataset", help="classification: centre-crop fraction at evaluation")  # fmt: skip
    mixup: float = option(0.0, group="augmentation", range=_POSITIVE,
                          help="MixUp alpha (classification; 0: off)")  # fmt: skip
    cutmix: float = option(0.0, group="augmentation", range=_POSITIVE,
                           help="CutMix alpha (classification; 0: off)")  # fmt: skip
    mosaic: float = option(group="augmentation", range=Range(0, 1),
        rule="the model's own (YOLO: 1), else 0, off",
        help="detection: probability of a 4-image mosaic")  # fmt: skip
    mosaic_off_epochs: int = option(group="augmentation", unit="epochs", range=_POSITIVE,
        rule="from the data: a sixth of the epochs",
        help="detection: the last epochs train without mosaic")  # fmt: skip
    elastic: float = option(group="augmentation", range=Range(0, 1), rule="0, off",
        help="segmentation: probability of an elastic deformation (cells, membranes)")  # fmt: skip
    # ---------------------------------------------- hardware and reproducibility
    device: str = option("auto", group="hardware and reproducibility", metavar="DEVICE",
        rule="auto: cuda, then mps, then cpu", help="auto, cpu, cuda, cuda:N or mps")  # fmt: skip
    amp: Amp = option("auto", group="hardware and reproducibility",
        rule="auto: on for CUDA; on a CPU, bf16 where the timing probe measures it faster",
        help="mixed precision (training only; every validation runs in float32)")  # fmt: skip
    # SyncBatchNorm is CUDA only: auto is on for CUDA with more than one process
    sync_bn: Amp = option("auto", group="hardware and reproducibility",
        rule="auto: on for CUDA with more than one process",
        help="BatchNorm statistics over the global batch under torchrun (CUDA only)")  # fmt: skip
    workers: int = option(0, group="hardware and reproducibility", range=Range(0, 256),
        help="data-loading worker processes (0: in the training process)")  # fmt: skip
    seed: int = option(0, group="hardware and reproducibility", range=Range(0, 2**32 - 1),
                       help="seed of the split, the data order and the initialization")  # fmt: skip
    deterministic: bool = option(False, group="hardware and reproducibility",
        help="deterministic algorithms (slower; a rerun repeats the metrics)")  # fmt: skip
    # ------------------------------------------ adversarial training (recog.robust.training)
    adv_train: AdvTrain = option("none", group="robustness (adversarial training)",
        help="adversarial training: every batch is attacked first "
        "(pgd; fgsm-rs, one random-start step; trades)")  # fmt: skip
    adv_eps: float = option(8 / 255, group="robustness (adversarial training)",
        range=Range(0, 1, False, True), rule="8/255", metavar="EPS", parse="eps",
        help="adversarial training radius, L-inf in [0, 1] pixels, e.g. 8/255")  # fmt: skip
    adv_steps: int = option(10, group="robustness (adversarial training)", range=Range(1, 1000),
                            help="attack steps per training batch for pgd and trades")  # fmt: skip
    adv_mix: float = option(0.0, group="robustness (adversarial training)", range=_FRACTION,
        help="weight of the clean images' loss beside the attacked ones' for pgd and "
        "fgsm-rs (0: attacked only, Madry et al.; 0.5: half each, Goodfellow et al.)")  # fmt: skip
    # ------------------------------------------- knowledge distillation (recog.distill)
    teacher: str = option(NONE, group="distillation", metavar="RUN",
        help="knowledge distillation: a trained run of the same task and classes teaches "
        "this one")  # fmt: skip
    distill_weight: float = option(0.5, group="distillation", range=Range(0, 1, False, True),
        help="distillation: loss = (1 - W) * task loss + W * distillation term")  # fmt: skip
    distill_temperature: float = option(4.0, group="distillation", range=Range(0, 100, False),
        help="distillation: softens classify logits and YOLO box bins")  # fmt: skip
    # ----------------------------------------------------- output and tracking
    out: str = option("", group="output and tracking", metavar="DIR",
                      rule="runs/<task>/<data>-<model>, numbered when taken", help="run directory")  # fmt: skip
    name: str = option("", group="output and tracking", rule="<data>-<model>",
                       help="name of the run directory under runs/<task>/")  # fmt: skip
    log: Log = option("none", group="output and tracking",
        help="experiment tracking: TensorBoard event files in RUN/tensorboard/, an MLflow run, "
        "or both")  # fmt: skip
    # auto: MLFLOW_TRACKING_URI, else sqlite beside the run (recorded resolved)
    log_uri: str = option("auto", group="output and tracking",
        rule="auto: MLFLOW_TRACKING_URI, else sqlite:///RUN/../mlflow.db",
        help="--log mlflow: the tracking URI")  # fmt: skip
    # ------------------------------------------------------ the run's own records
    #: input normalization, per channel: the pretrained file's own (recog.models.pretrained),
    #: else the model's; every task, export and server reads it from here.  [] only in runs
    #: written before config version 3 (`recog.tasks.base.normalization` takes the model's)
    mean: list[float] = _record()
    std: list[float] = _record()
    #: the pretrained file the run started from: name, source, path, sha256 ({}: none)
    pretrained: dict[str, str] = _record(factory=dict)
    #: what the run ran on (filled by the recipe, never by the user)
    versions: dict[str, str] = _record(factory=dict)
    version: int = _record(CONFIG_VERSION)

    def __post_init__(self) -> None:
        """Every value is of its field's type and in its range, or a RecogError naming it."""
        hints = _hints()
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is None:  # `data: null` in an edited config.yaml
                raise RecogError(f"{f.name} must be given a value, not null (None)")
            setattr(self, f.name, _checked(f.name, getattr(self, f.name), hints[f.name]))
        _check_together(self.to_dict(), placed=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (YAML-safe): the task as its name."""
        values = dataclasses.asdict(self)
        values["task"] = str(values["task"])
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
        """A record from a run's values (all of them), or a RecogError naming `source`."""
        values = _migrated(dict(values))
        _refuse_unknown(values, source)
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
                   and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]  # fmt: skip
        try:
            if missing:
                raise RecogError(f"{missing[0]} must be given a value (a run records every one)")
            return cls(**values)
        except RecogError as exc:
            raise RecogError(f"{source}: {exc}") from None

    def save(self, path: Path) -> None:
        # imported here: recog.io imports torch, and the CLI parser reads this module
        from recog.io import atomic_write_text

        atomic_write_text(path, dump_yaml(self.to_dict()))

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        """A run's config.yaml, as the record it is."""
        return cls.from_dict(_load_mapping(path), source=str(path))


def options() -> Iterator[tuple[dataclasses.Field, Opt]]:
    """Every option of `recog train`, with its declaration, in `--help` order."""
    declared = [(f, f.metadata["option"]) for f in dataclasses.fields(TrainConfig)
                if "option" in f.metadata]  # fmt: skip
    for group in GROUPS:
        yield from ((f, opt) for f, opt in declared if opt.group == group)


def fixed_default(f: dataclasses.Field) -> Any:
    """What a left-out option is when the recipe does not choose it."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


class TrainRequest:
    """What a user asked of `recog train`: the options given, each checked; nothing chosen.

    `request.img_size` is the value given, else the option's fixed default,
    else None: the recipe decides (`recog.recipe.resolve`).
    """

    def __init__(self, **given: Any) -> None:
        hints = _hints()
        _refuse_unknown(given, "")
        checked: dict[str, Any] = {}
        for key, value in given.items():
            if value is None:
                if "option" in _FIELDS[key].metadata and _FIELDS[key].metadata["option"].chosen:
                    continue  # `epochs: null`: left to the recipe
                raise RecogError(f"{key} must be given a value, not null (None)")
            checked[key] = _checked(key, value, hints[key])
        _check_together(checked)
        self._given = checked

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        if key not in _FIELDS:
            raise AttributeError(f"TrainRequest has no option {key!r}")
        if key in self._given:
            return self._given[key]
        f = _FIELDS[key]
        return (
            None if f.metadata.get("option", Opt("", "", chosen=True)).chosen else fixed_default(f)
        )

    def given(self) -> dict[str, Any]:
        """The options the user gave, as given (checked)."""
        return dict(self._given)

    def replace(self, **values: Any) -> TrainRequest:
        """The same request with `values` given as well (None: taken back, left to the recipe)."""
        given = {**self._given, **values}
        return TrainRequest(**{k: v for k, v in given.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """The given options, YAML-safe."""
        values = dict(self._given)
        if "task" in values:
            values["task"] = str(values["task"])
        return values

    def __repr__(self) -> str:
        return f"TrainRequest({', '.join(f'{k}={v!r}' for k, v in self._given.items())})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainRequest) and self._given == other._given

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> TrainRequest:
        """A request from YAML or keyword values, or a RecogError naming `source`."""
        try:
            return cls(**dict(values))
        except RecogError as exc:
            raise RecogError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: Path) -> TrainRequest:
        """A YAML file of options (a run's config.yaml gives every one of them)."""
        return cls.from_dict(_migrated(_load_mapping(path)), source=str(path))


def _load_mapping(path: Path) -> dict[str, Any]:
    values = load_yaml_file(Path(path))
    if not isinstance(values, dict):
        raise RecogError(f"{path}: not a recog config (expected a mapping)")
    return values


def _refuse_unknown(values: Mapping[str, Any], source: str) -> None:
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise RecogError(f"{source + ': ' if source else ''}unknown setting {unknown[0]!r}")


#: what runs written before config version 3 lack (recog 0.x): read as "from scratch, the
#: model's own normalization" (`recog.tasks.base.normalization`)
_BEFORE_V3 = {"head_epochs": 0.0, "backbone_lr": 1.0, "mean": [], "std": [], "pretrained": {}}


def _migrated(values: dict[str, Any]) -> dict[str, Any]:
    """A run's values as this version records them (a run of version 2 lacks five)."""
    version = values.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version >= 3:
        return values  # the current version, or a wrong one that the checks name
    return {**_BEFORE_V3, **values, "weights": values.get("weights") or NONE}


@functools.cache
def _hints() -> dict[str, Any]:
    return get_type_hints(TrainConfig)


#: the record's fields by name (a request's options are these)
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}

#: each option's range, from its declaration
_RANGES: dict[str, Range] = {
    f.name: f.metadata["option"].range
    for f in dataclasses.fields(TrainConfig)
    if "option" in f.metadata and f.metadata["option"].range is not None
}


def _check_together(values: Mapping[str, Any], *, placed: bool = True) -> None:
    """What one option alone cannot say: checks across options and of text's contents."""
    if values.get("class_weights") is not None:
        parse_class_weights(values["class_weights"])
    for key in {"num_classes", "img_size"} & set(values.get("model_args") or {}):
        # given to every builder by recog itself (recog.models.arguments checks the rest)
        raise RecogError(f"model_args: {key} is not a model argument (the data, --img-size)")
    # a run is named, never placed, by --name (issue 33: `--name ../../x` left runs/)
    if "data" in values and not values["data"].strip():
        raise RecogError("data must name a dataset, not an empty text")
    name = values.get("name")
    if name is None or (name == "" and not placed):
        return  # a record's run not placed yet
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise RecogError(
            f"name must be a plain folder name (no '/', '\\', '.' or '..'), not {name!r}"
        )


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
        rule = _RANGES.get(key)
        if rule is not None and not rule.holds(value):
            raise RecogError(f"{key} must be {rule.describe()}, not {value!r}")
        return float(value) if kind is float else value
    if kind is str:
        if not isinstance(value, str):
            raise RecogError(f"{key} must be text, not {value!r}")
        return value
    origin = get_origin(kind)
    if origin is list and get_args(kind) == (float,):
        # a normalization: three finite numbers (std > 0), as run configs give them; [] in a
        # run from before config version 3
        if value == []:
            return []
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
        raise RecogError(
            f"--time: at most {MAX_TIME_S // 86400} days ({MAX_TIME_S} s), not {text!r}"
        )
    return seconds


def parse_class_weights(text: str, n: int | None = None) -> list[float] | None:
    """`--class-weights 1,2.5,1` -> finite non-negative numbers, not all 0 (`n` of them when
    `n` is given); None for "none"."""
    if text.strip().lower() == NONE:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise RecogError(
            f"--class-weights: expected comma-separated numbers, not {text!r}"
        ) from None
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

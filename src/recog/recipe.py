"""The recipe: what every option a user left out becomes, and why (one job: every unset option is resolved in this one place, and each rule keeps its evidence beside it, hence over 450 lines).

`resolve` turns a `TrainConfig` with unset (None) fields into one with none,
from `DataFacts` (a survey of the data), the task's `TaskRecipe`, the model's
registry defaults and the machine.  It runs in two steps:

1. `resolve` (before the data is loaded): model, input size, batch,
   learning rate, augmentation, EMA, and the planned budget from the rule
   below.
2. `resolve_budget` (after a short timing probe of real training steps):
   the planned budget is capped so that the run fits the time allowed on this
   machine (`--time`, else `DEFAULT_TIME_CAP`), then warm-up and early
   stopping follow the budget.

Rules (evidence in docs/recipe.md):
- budget in optimizer steps: `steps_per_sqrt_image * sqrt(train images)`,
  at least `min_steps`; small sets get many epochs, big ones few.
- batch: a power of two giving at least 8 steps an epoch, in
  [batch_min, batch_max] of the task; for detection, with `--epochs` given,
  smaller where those epochs would fall short of the planned steps.
- learning rate: the model's own where it has one (measured with it), else
  the task's AdamW rate at its reference batch, square-root scaled to the
  batch (Malladi et al. 2022, "On the SDEs and scaling rules for adaptive
  gradient algorithms"); SGD scales linearly (Goyal et al. 2017).
- input size: the data's median side (shorter for crops, longer for
  letterboxes) rounded to 32, between the task's floor and its cap for the
  device.
- augmentation: `strong` below `strong_below` training images.
- warm-up 5% of the steps; early stopping after half the epochs without gain
  (none under `--time`: the clock ends the run, after the rate has annealed).

Every choice leaves a note (`Resolution.notes`) that the start block of a
run prints, so a user sees what was chosen and from which fact.
"""

from __future__ import annotations

import dataclasses
import math
import platform
from dataclasses import dataclass, field
from typing import Any

from recog.config import NONE, TrainConfig, TrainRequest
from recog.errors import RecogError
from recog.models.factory import get_spec
from recog.models.pretrained import PretrainedWeights
from recog.models.registry import ModelSpec
from recog.recipe_start import FineTune, choose_start, pretrained_record
from recog.types import DataFacts

#: a no-flag run is planned to fit this many seconds of training on this machine: with the
#: survey, the probe, the final evaluation and the report (about a minute on 2 cores) a run
#: stays under the 20 minutes promised for the shared datasets.  12 min cut hymenoptera from
#: 59 to 42 epochs (top-1 0.739) where 60 epochs reach 0.758 (docs/recipe.md)
DEFAULT_TIME_CAP = 15 * 60
WARMUP_FRACTION = 0.05
#: `--amp auto` on a CPU takes bf16 when the probe's bf16 steps are this many times faster
#: than float32's (a margin over the probe's step-to-step noise, about 5% on 2 cores)
BF16_GAIN = 1.15
# 0.3 stopped hymenoptera (b) at epoch 20 of 30 on a best of 0.732 at epoch 11, before the
# cosine's low-rate half, where the 60-epoch run found its best (0.758)
PATIENCE_FRACTION = 0.5
MIN_PATIENCE = 5
MOSAIC_OFF_FRACTION = 1 / 6  # raccoon: the last 10 of 60 epochs measured best (bench/README.md)
#: what `resolve_budget` may change that the data loaders read (the detection dataset turns
#: its mosaic off for the last epochs): the data is read again where one of them changed
LOADER_FIELDS = ("mosaic_off_epochs",)


@dataclass(frozen=True)
class TaskRecipe:
    """A task's part of the recipe: its choices where the model has none."""

    #: (largest median image side, model): the first that fits the data is the default
    models: tuple[tuple[int, str], ...]
    size_cap_cpu: int
    size_cap_gpu: int
    size_floor: int = 32
    #: which side of the images sets the input size: the shorter (crops) or longer (letterbox)
    size_side: str = "short"
    batch_min: int = 8
    batch_max: int = 32
    steps_per_sqrt_image: float = 60.0
    min_steps: int = 300
    lr: float = 2e-3  # AdamW, at lr_batch
    lr_batch: int = 32
    sgd_lr: float = 0.05  # SGD, at a batch of 64 (linear scaling)
    weight_decay: float = 0.05
    label_smoothing: float = 0.0
    ema: bool = False
    strong_below: int = 0  # fewer training images than this: augment strong
    #: with --epochs given (no batch), a smaller batch, down to batch_min, so those epochs
    #: still reach the planned steps.  Measured for detection only (raccoon, yolo_n, 60
    #: epochs: batch 16, 600 steps, mAP 0.347; batch 8, 1,200 steps, 0.392; docs/recipe.md)
    batch_for_budget: bool = False
    hflip: float = 0.5
    #: whether the task's loss takes a weight per class (`--class-weights`; refused elsewhere)
    weighs_classes: bool = False
    #: starting from pretrained weights: its own defaults (None: from scratch only)
    finetune: FineTune | None = None
    #: augment level -> smallest scale of the training augmentation (crop area or zoom)
    min_scales: dict[str, float] = field(
        default_factory=lambda: {"none": 1.0, "light": 0.6, "standard": 0.25, "strong": 0.08}
    )


@dataclass
class Resolution:
    """The resolved record and the reasons for each choice."""

    #: every option resolved: the plan (`resolve`), then fitted to this machine's time
    #: (`resolve_budget`)
    config: TrainConfig
    notes: list[str] = field(default_factory=list)
    #: epochs the step rule planned, before the time cap
    planned_epochs: int = 0
    #: the options the recipe chose (not given by the user): those that follow the run's
    #: length are chosen again when the time cap changes it
    chosen: frozenset[str] = frozenset()
    #: the time cap's cut, when it fits less than half the planned steps: the warning the
    #: start block and the final summary give (""; none)
    budget_cut: str = ""
    #: what the user asked (the budget they gave decides how the time cap applies)
    request: TrainRequest = field(default_factory=lambda: TrainRequest())


@dataclass(frozen=True)
class Probe:
    """Measured on this machine, on real batches: seconds per optimizer step and per validation."""

    step_seconds: float
    val_seconds: float
    #: the same steps under bf16 autocast, timed where `--amp auto` meets a CPU with native
    #: bf16 (AMX / AVX512-BF16); None where it was not timed
    bf16_step_seconds: float | None = None


def versions() -> dict[str, str]:
    import torch
    import torchvision

    from recog.version import __version__

    return {
        "recog": str(__version__),
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "python": platform.python_version(),
    }


def _pow2_floor(x: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(1.0, x)))))


def _round32(x: float) -> int:
    return max(32, int(round(x / 32.0)) * 32)


def steps_per_epoch(n_train: int, batch_size: int, accumulate: int, world_size: int = 1) -> int:
    per_rank = math.ceil(n_train / max(1, world_size))
    return max(1, math.ceil(math.ceil(per_rank / batch_size) / accumulate))


def choose_model(facts: DataFacts, recipe: TaskRecipe) -> str:
    for side, name in recipe.models:
        if facts.median_side <= side:
            return name
    return recipe.models[-1][1]


class _Choices:
    """What the user gave, what the recipe has chosen so far, and why (the notes)."""

    def __init__(self, request: TrainRequest):
        self.request = request
        self.values: dict[str, Any] = {}
        self.notes: list[str] = []
        #: the budget the step rule plans, which `resolve_budget` fits to the machine's time
        self.plan_budget: set[str] = set()

    def get(self, key: str) -> Any:
        """The value given, chosen, or fixed by default; None while still open."""
        return self.values[key] if key in self.values else getattr(self.request, key)

    def choose(self, key: str, value: Any, why: str = "") -> None:
        """`value` for `key`, where the user gave none and nothing was chosen yet."""
        if self.get(key) is None:
            self.values[key] = value
            if why:
                self.notes.append(why)


def resolve(
    request: TrainRequest,
    facts: DataFacts,
    recipe: TaskRecipe,
    *,
    device_type: str,
    data_defaults: Any,
    world_size: int = 1,
) -> Resolution:
    """The run's plan: every option resolved, with the budget the step rule plans; the time
    cap on this machine is `resolve_budget`'s, after the probe.  The rules: module docstring."""
    ch = _Choices(request)
    recipe, spec, record = _start(ch, facts, recipe)
    _input_size(ch, facts, recipe, spec, record, device_type, data_defaults)
    batch = _batch(ch, facts, recipe, world_size)
    _optimizer(ch, recipe, batch * ch.get("accumulate") * world_size)
    _augmentation(ch, facts, recipe, data_defaults)
    planned = _planned_budget(ch, facts, recipe, batch, world_size)
    _machine(ch, facts, device_type, world_size)
    chosen = frozenset(ch.values) - ch.plan_budget
    values = {f.name: ch.get(f.name) for f in dataclasses.fields(TrainConfig)}
    plan = TrainConfig.from_dict({k: v for k, v in values.items() if v is not None},
                                 source="the recipe")  # fmt: skip
    return Resolution(plan, ch.notes, planned, chosen, request=request)


def _start(
    ch: _Choices, facts: DataFacts, recipe: TaskRecipe
) -> tuple[TaskRecipe, ModelSpec, PretrainedWeights | None]:
    """Model, weights, normalization and the model's own settings; the recipe a fine-tuning
    run follows."""
    model, weights, record = choose_start(
        ch.request, facts, recipe.finetune, lambda: choose_model(facts, recipe), ch.notes
    )
    ch.choose("model", model)
    ch.choose("weights", weights)
    spec: ModelSpec = get_spec(model)
    fine = recipe.finetune if weights != NONE else None
    if fine is not None:
        recipe = dataclasses.replace(recipe, **fine.recipe_settings())
    # the resolved record's preprocessing, whatever its source (timm's vit_tiny: 0.5, 0.5)
    mean, std = (record.mean, record.std) if record is not None else (spec.mean, spec.std)
    ch.values["mean"], ch.values["std"] = list(mean), list(std)
    ch.values["pretrained"] = pretrained_record(weights, record)
    # the model's own measured settings come first (mask_rcnn: batch 4, lr 5e-4, bf16)
    for key, value in spec.train_defaults.items():
        if ch.get(key) in (None, "auto"):
            ch.values[key] = value
            ch.notes.append(f"{key} {value}: {model}'s own setting")
    return recipe, spec, record if fine is not None else None


def _input_size(
    ch: _Choices,
    facts: DataFacts,
    recipe: TaskRecipe,
    spec: ModelSpec,
    record: PretrainedWeights | None,
    device_type: str,
    data_defaults: Any,
) -> None:
    """The data's median side rounded to 32, between the task's floor and the cap for the
    device (or the weights' own size when fine-tuning)."""
    side = facts.median_side if recipe.size_side == "short" else facts.median_long_side
    cap = recipe.size_cap_gpu if device_type == "cuda" else recipe.size_cap_cpu
    fine = recipe.finetune
    # the weights' own size; 0 where the record has none (a detector's, a user's file)
    own_size = record.input_size if record is not None and fine and fine.size_from_weights else 0
    if data_defaults.img_size:
        why = f"{data_defaults.img_size} px: {ch.get('data')}'s own size"
        ch.choose("img_size", data_defaults.img_size, why)
    elif side and own_size:
        size = min(own_size, max(recipe.size_floor, spec.min_img_size, _round32(side)))
        ch.choose(
            "img_size",
            size,
            f"{size} px: the weights' own {own_size} px"
            + (f", median image {side} px" if size < own_size else ""),
        )
    elif side:
        size = min(cap, max(recipe.size_floor, spec.min_img_size, _round32(side)))
        why = f"{size} px: median image {side} px, capped at {cap} px on {device_type}"
        ch.choose("img_size", size, why)
    else:
        why = f"{spec.default_img_size} px: {spec.name}'s default"
        ch.choose("img_size", spec.default_img_size, why)
    if ch.get("img_size") < spec.min_img_size:
        raise RecogError(
            f"model {spec.name} needs images of at least {spec.min_img_size} px, "
            f"not {ch.get('img_size')}"
        )


def _batch(ch: _Choices, facts: DataFacts, recipe: TaskRecipe, world_size: int) -> int:
    """At least 8 steps an epoch; for detection with --epochs, small enough to reach the plan."""
    batch = min(recipe.batch_max, max(recipe.batch_min, _pow2_floor(facts.n_train / 8)))
    why = (
        f"batch {batch}: {facts.n_train} training images (the largest power of two in "
        f"[{recipe.batch_min}, {recipe.batch_max}] with >= 8 steps an epoch where the data allows)"
    )
    epochs, accumulate = ch.request.epochs, ch.get("accumulate")
    if recipe.batch_for_budget and epochs is not None and not (ch.request.steps or ch.request.time):
        smaller = batch_for_epochs(facts, recipe, batch, epochs, accumulate, world_size)
        if smaller < batch:
            spe = steps_per_epoch(facts.n_train, smaller, accumulate, world_size)
            batch, why = smaller, (
                f"batch {smaller}: --epochs {epochs} of {spe} steps reach the "
                f"{planned_steps(facts, recipe):,.0f} steps planned from {facts.n_train} images"
            )  # fmt: skip
    ch.choose("batch_size", batch, why)  # a batch the user (or the model) gave is kept
    return int(ch.get("batch_size"))


def _optimizer(ch: _Choices, recipe: TaskRecipe, effective: int) -> None:
    """The rate for the effective batch (square-root for AdamW, linear for SGD)."""
    if ch.get("optimizer") == "sgd":
        lr = recipe.sgd_lr * max(effective / 64, 0.25)
        ch.choose(
            "lr", float(f"{lr:.3g}"), f"lr {lr:.3g}: SGD {recipe.sgd_lr} x batch {effective}/64"
        )
    else:
        lr = recipe.lr * math.sqrt(effective / recipe.lr_batch)
        ch.choose(
            "lr",
            float(f"{lr:.3g}"),
            f"lr {lr:.3g}: AdamW {recipe.lr:g} at batch {recipe.lr_batch}, "
            f"square-root scaled to batch {effective}",
        )
    ch.choose("weight_decay", recipe.weight_decay)
    ch.choose("schedule", "cosine")
    ch.choose("label_smoothing", recipe.label_smoothing)


def _augmentation(ch: _Choices, facts: DataFacts, recipe: TaskRecipe, data_defaults: Any) -> None:
    """Augmentation by data size, and the fine-tuning schedule where weights are loaded."""
    if recipe.strong_below and facts.n_train < recipe.strong_below:
        why = f"augment strong: fewer than {recipe.strong_below} training images"
        ch.choose("augment", "strong", why)
    else:
        ch.choose("augment", "standard")
    ch.choose("hflip", data_defaults.hflip if data_defaults.hflip is not None else recipe.hflip)
    ch.choose("crop_pct", data_defaults.crop_pct)
    fine = recipe.finetune if ch.get("weights") != NONE else None
    if fine is not None and fine.min_scale is not None and ch.request.augment is None:
        ch.choose("min_scale", data_defaults.min_scale or fine.min_scale)
    ch.choose("min_scale", data_defaults.min_scale or recipe.min_scales[ch.get("augment")])
    # fine-tuning: the new head alone first, then the whole network
    if fine is not None:
        first = (
            f"the new layers train alone for {fine.head_epochs:g} epoch, then "
            if fine.head_epochs
            else ""
        )
        why = f"fine-tuning: {first}the pretrained layers at {fine.backbone_lr:g}x the rate"
        ch.choose("head_epochs", fine.head_epochs, why)
        ch.choose("backbone_lr", fine.backbone_lr)
        # a fine-tuning run is short (10 epochs on hymenoptera) and its best epochs come at
        # the cosine's low-rate end: no early stop
        ch.choose("patience", 0)
    ch.choose("head_epochs", 0.0)
    ch.choose("backbone_lr", 1.0)
    ch.choose("elastic", 0.0)
    ch.choose("mosaic", 0.0)


def _planned_budget(
    ch: _Choices, facts: DataFacts, recipe: TaskRecipe, batch: int, world_size: int
) -> int:
    """The step rule's epochs (before the time cap), and what follows the run's length."""
    spe = steps_per_epoch(facts.n_train, batch, ch.get("accumulate"), world_size)
    planned = _planned_epochs(ch.request, facts, recipe, spe)
    ch.choose("mosaic_off_epochs", mosaic_off_epochs(planned))
    if recipe.ema:
        decay = ema_decay(planned * spe)
        ch.choose("ema", decay, f"EMA of the weights, decay {decay:.4f} (a tenth of the run)")
    else:
        ch.choose("ema", 0.0)
    # the plan's budget, until `resolve_budget` fits it to this machine
    plan = {
        "epochs": planned,
        "steps": planned * spe,
        "time": 0.0,
        "warmup_epochs": round(max(WARMUP_FRACTION * planned, 1 / spe), 3),
        "patience": max(MIN_PATIENCE, math.ceil(PATIENCE_FRACTION * planned)),
    }
    for key, value in plan.items():
        if ch.get(key) is None:
            ch.values[key] = value
            ch.plan_budget.add(key)
    return planned


def _machine(ch: _Choices, facts: DataFacts, device_type: str, world_size: int) -> None:
    """Off values, the machine's settings, and the record of what the run ran on."""
    ch.choose("clip_grad", 0.0)
    ch.choose("class_weights", NONE)
    ch.choose("classes", list(facts.class_names))
    if ch.get("amp") == "auto" and device_type != "cpu":
        ch.values["amp"] = "on" if device_type == "cuda" else "off"
    # on a CPU, `auto` stays for `resolve_budget`: the probe times float32 against bf16
    sync_bn = ch.get("sync_bn")
    if sync_bn == "auto":
        ch.values["sync_bn"] = "on" if device_type == "cuda" and world_size > 1 else "off"
    elif sync_bn == "on" and world_size > 1 and device_type != "cuda":
        # torch's SyncBatchNorm syncs CUDA tensors only (ValueError on CPU): refuse up front
        raise RecogError(f"--sync-bn on: needs CUDA devices (this job trains on {device_type})")
    if ch.get("device") == "auto":
        ch.values["device"] = device_type
    if ch.get("cache") == "auto":
        from recog.data.classify import CACHE_AUTO_LIMIT

        ch.values["cache"] = "on" if facts.n_train + facts.n_val <= CACHE_AUTO_LIMIT else "off"
    ch.values["versions"] = versions()
    ch.values["task"] = str(facts.task)


def mosaic_off_epochs(epochs: int) -> int:
    """The last epochs without mosaic: a sixth of the run, at least one."""
    return max(1, round(epochs * MOSAIC_OFF_FRACTION))


def ema_decay(steps: int) -> float:
    """EMA decay averaging over about a tenth of the run's steps, in [0.99, 0.9999]."""
    return round(min(0.9999, max(0.99, 1 - 10 / max(1, steps))), 5)


def planned_steps(facts: DataFacts, recipe: TaskRecipe) -> float:
    """The step rule: `steps_per_sqrt_image * sqrt(train images)`, at least `min_steps`."""
    return max(recipe.min_steps, recipe.steps_per_sqrt_image * math.sqrt(facts.n_train))


def batch_for_epochs(
    facts: DataFacts, recipe: TaskRecipe, batch: int, epochs: int, accumulate: int, world: int
) -> int:
    """The largest power-of-two batch, at most `batch` and at least the task's smallest,
    whose `epochs` reach the planned steps (`TaskRecipe.batch_for_budget`)."""
    target = planned_steps(facts, recipe)
    while (
        batch > recipe.batch_min
        and epochs * steps_per_epoch(facts.n_train, batch, accumulate, world) < target
    ):
        batch //= 2
    return max(batch, recipe.batch_min)


def _planned_epochs(req: TrainRequest, facts: DataFacts, recipe: TaskRecipe, spe: int) -> int:
    if req.epochs is not None and req.steps is not None and req.steps != req.epochs * spe:
        raise RecogError(
            f"--epochs {req.epochs} and --steps {req.steps} disagree "
            f"({req.epochs} epochs are {req.epochs * spe} steps here); give one of them"
        )
    if req.epochs is not None:
        return int(req.epochs)
    if req.steps is not None:
        return max(1, math.ceil(req.steps / spe))
    return max(1, round(planned_steps(facts, recipe) / spe))


def resolve_budget(
    res: Resolution, facts: DataFacts, *, probe: Probe | None, world_size: int = 1
) -> Resolution:
    """The plan fitted to this machine: epochs, steps and time (`--time`, else the cap), the
    precision the probe chose, and what follows the run's length (warm-up, patience, EMA,
    the mosaic-off epochs)."""
    plan, req, notes = res.config, res.request, list(res.notes)
    values: dict[str, Any] = {}
    if plan.amp == "auto":
        values["amp"], probe, why = _precision(probe)
        notes.append(why)
    spe = steps_per_epoch(facts.n_train, plan.batch_size, plan.accumulate, world_size)
    epochs_given = req.epochs is not None or req.steps is not None
    epoch_seconds = (probe.step_seconds * spe + probe.val_seconds) if probe else 0.0
    budget_cut = ""
    if req.time:
        values.update(_clock_budget(req, epoch_seconds, notes))
    else:
        values["epochs"], values["time"] = res.planned_epochs, 0.0
        if not epochs_given and probe is not None:
            values["time"], budget_cut = _capped(res.planned_epochs, spe, epoch_seconds, notes)
    epochs = int(values["epochs"])
    if req.steps is None or not epochs_given or req.time:
        values["steps"] = epochs * spe
    values.update(_following(res, epochs, spe, epoch_seconds, req.time or values["time"]))
    capped = not req.time and bool(values.get("time"))
    if not req.time or capped:
        how = "given" if epochs_given else f"{res.planned_epochs * spe} steps planned from " \
            f"{facts.n_train} images"  # fmt: skip
        eta = f", about {_fmt_seconds(epochs * epoch_seconds)} on this machine" if probe else ""
        notes.append(f"budget {epochs * spe:,} steps = {epochs} epochs of {spe} steps ({how}){eta}")
    config = dataclasses.replace(plan, **values)
    return dataclasses.replace(res, config=config, notes=notes, budget_cut=budget_cut)


def _clock_budget(req: TrainRequest, epoch_seconds: float, notes: list[str]) -> dict[str, Any]:
    """`--time`: the schedule follows the clock; epochs is only an upper bound."""
    time = float(req.time)
    bound = req.epochs or max(1, math.ceil(3 * time / max(epoch_seconds, 1e-3)) + 2)
    est = time / max(epoch_seconds, 1e-3)
    notes.append(
        f"--time {_fmt_seconds(time)}: the schedule follows the clock "
        f"(about {est:.0f} epochs of {epoch_seconds:.1f} s on this machine)"
    )
    return {"epochs": bound}


def _capped(epochs: int, spe: int, epoch_seconds: float, notes: list[str]) -> tuple[float, str]:
    """The cap's clock where the plan does not fit it, and the warning when it cuts more than
    half (time 0.0: the plan fits)."""
    fits = max(1, int(DEFAULT_TIME_CAP // max(epoch_seconds, 1e-3)))
    if fits >= epochs:
        return 0.0, ""
    # The cap is a clock, not an epoch count fixed by three probe steps: a core busy with
    # something else during the probe planned 8 of 77 epochs (yolo_n, issue 34).  The
    # trainer re-plans every epoch from measured epoch times (as under --time), up to the
    # rule's plan; the schedule follows whichever ends first, the clock or the plan.
    notes.append(
        f"budget: {DEFAULT_TIME_CAP // 60} min cap, about {fits} of the {epochs} "
        f"planned epochs on this machine now; re-planned each epoch from measured "
        f"times (give --time or --epochs for more)"
    )
    if fits >= epochs / 2:
        return float(DEFAULT_TIME_CAP), ""
    return float(DEFAULT_TIME_CAP), (
        f"the {DEFAULT_TIME_CAP // 60}-minute cap fits about {fits * spe:,} of the "
        f"{epochs * spe:,} planned steps on this machine; for the full plan give "
        f"--time {_fmt_minutes(epochs * epoch_seconds)} or --epochs {epochs}"
    )


def _following(
    res: Resolution, epochs: int, spe: int, epoch_seconds: float, budget: float
) -> dict[str, Any]:
    """What follows the run's length follows the capped one (raccoon: capped 76 -> 30 epochs
    kept 13 mosaic-off epochs planned for 76)."""
    plan, req = res.config, res.request
    planned_for = min(epochs, int(budget / max(epoch_seconds, 1e-3))) if budget else epochs
    values: dict[str, Any] = {}
    if "mosaic_off_epochs" in res.chosen:
        values["mosaic_off_epochs"] = mosaic_off_epochs(max(1, planned_for))
    if "ema" in res.chosen and plan.ema:
        values["ema"] = ema_decay(max(1, planned_for) * spe)
    if req.warmup_epochs is None:
        values["warmup_epochs"] = round(max(WARMUP_FRACTION * planned_for, 1 / spe), 3)
    if "patience" not in res.chosen and req.patience is None:
        # under --time the clock ends the run, so the schedule anneals to its end: no early
        # stop (the cap's clock only bounds a planned run, whose patience stays)
        values["patience"] = (
            0 if req.time else max(MIN_PATIENCE, math.ceil(PATIENCE_FRACTION * planned_for))
        )
    return values


def _fmt_minutes(seconds: float) -> str:
    """A `--time` value that covers `seconds` (whole minutes, rounded up, at least 1)."""
    return f"{max(1, math.ceil(seconds / 60))}m"


def _precision(probe: Probe | None) -> tuple[str, Probe | None, str]:
    """`--amp auto` on a CPU: bf16 autocast where the probe measured it faster by
    `BF16_GAIN` (resnet18 at 128 px trains 1.9x faster on AMX; docs/recipe.md), else
    float32.  Returns the setting, the probe with the chosen precision's step time, why."""
    if probe is None or probe.bf16_step_seconds is None:
        return "off", probe, "amp off: this CPU has no native bf16 (AMX / AVX512-BF16)"
    fp32, bf16 = probe.step_seconds, probe.bf16_step_seconds
    if bf16 * BF16_GAIN <= fp32:
        chosen = dataclasses.replace(probe, step_seconds=bf16)
        return "on", chosen, f"amp on: bf16 steps {bf16:.2f} s against {fp32:.2f} s in float32"
    return "off", probe, f"amp off: bf16 steps {bf16:.2f} s, no faster than {fp32:.2f} s in float32"


def _fmt_seconds(seconds: float) -> str:
    if seconds >= 90:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def start_block(
    facts: DataFacts, res: Resolution, run_dir: Any, *, device: str, world_size: int = 1
) -> list[str]:
    """The lines a run prints before its first epoch: what trains on what, for how long, where,
    and why (one `why` line per choice the recipe made)."""
    cfg = res.config
    spe = steps_per_epoch(facts.n_train, cfg.batch_size, cfg.accumulate, world_size)
    per_step = f"batch {cfg.batch_size}" + (f" x {world_size} processes" if world_size > 1 else "")
    if cfg.accumulate > 1:
        per_step += f", {cfg.accumulate} batches a step"
    if cfg.time:
        budget = (
            f"{_fmt_seconds(cfg.time)} of training, at most {cfg.epochs} epochs of {spe} steps "
            f"({per_step})"
        )
    else:
        budget = f"{cfg.epochs} epochs of {spe} steps = {cfg.steps:,} steps ({per_step})"
    lines = [
        "recog train",
        f"  task       {facts.task}",
        f"  model      {cfg.model} at {cfg.img_size} px",
        f"  data       {facts.name}: {facts.n_train} train / {facts.n_val} val images, "
        f"{facts.num_classes} classes",
        *([f"  split      {facts.split}"] if facts.split else []),
        f"  budget     {budget}",
        f"  recipe     lr {cfg.lr:g} ({cfg.optimizer}, {cfg.schedule}, "
        f"warm-up {cfg.warmup_epochs:g} epochs), weight decay {cfg.weight_decay:g}, "
        f"augment {cfg.augment}, label smoothing {cfg.label_smoothing:g}"
        + (f", EMA {cfg.ema:g}" if cfg.ema else "")
        + (f", patience {cfg.patience}" if cfg.patience else ""),
    ]
    lines += [f"  why        {note}" for note in res.notes]
    lines += [f"  warning    {res.budget_cut}"] if res.budget_cut else []
    lines += [
        f"  device     {device}, amp {cfg.amp}, seed {cfg.seed}"
        + (", deterministic" if cfg.deterministic else ""),
        f"  run        {run_dir}",
    ]
    return lines

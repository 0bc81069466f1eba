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

from recog.config import NONE, TrainConfig
from recog.errors import RecogError
from recog.models.factory import get_spec
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
    #: starting from pretrained weights: its own defaults (None: from scratch only)
    finetune: FineTune | None = None
    #: augment level -> smallest scale of the training augmentation (crop area or zoom)
    min_scales: dict[str, float] = field(
        default_factory=lambda: {"none": 1.0, "light": 0.6, "standard": 0.25, "strong": 0.08}
    )


@dataclass
class Resolution:
    """The resolved config and the reasons for each choice."""

    config: TrainConfig
    notes: list[str] = field(default_factory=list)
    #: epochs the step rule planned, before the time cap
    planned_epochs: int = 0
    #: the fields the recipe chose (not given by the user): those that follow the run's
    #: length are chosen again when the time cap changes it
    chosen: frozenset[str] = frozenset()
    #: the time cap's cut, when it fits less than half the planned steps: the warning the
    #: start block and the final summary give (""; none)
    budget_cut: str = ""


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


def resolve(
    cfg: TrainConfig,
    facts: DataFacts,
    recipe: TaskRecipe,
    *,
    device_type: str,
    data_defaults: Any,
    world_size: int = 1,
) -> Resolution:
    """Every unset field but the time-capped budget; see the module docstring for the rules."""
    notes: list[str] = []
    given = set(cfg.to_dict()) - set(cfg.unset())
    values: dict[str, Any] = {}

    def choose(key: str, value: Any, why: str = "") -> None:
        if key not in given and key not in values:
            values[key] = value
            if why:
                notes.append(why)

    model, weights, record = choose_start(
        cfg, facts, recipe.finetune, lambda: choose_model(facts, recipe), notes
    )
    if cfg.model is None:
        values["model"] = model
    if cfg.weights is None:
        values["weights"] = weights
    spec: ModelSpec = get_spec(model)
    fine = recipe.finetune if weights != NONE else None
    if fine is not None:
        recipe = dataclasses.replace(
            recipe,
            steps_per_sqrt_image=fine.steps_per_sqrt_image,
            min_steps=fine.min_steps,
            lr=fine.lr,
            lr_batch=fine.lr_batch,
            size_floor=fine.size_floor,
        )
    mean, std = (record.mean, record.std) if record is not None else (spec.mean, spec.std)
    values["mean"], values["std"] = list(mean), list(std)
    values["pretrained"] = pretrained_record(weights, record)
    # the model's own measured settings come first (mask_rcnn: batch 4, lr 5e-4, bf16)
    for key, value in spec.train_defaults.items():
        if getattr(cfg, key) in (None, "auto") and key not in values:
            values[key] = value
            notes.append(f"{key} {value}: {model}'s own setting")
    spec_chosen = set(values)
    cfg = dataclasses.replace(cfg, **values)
    values = {}
    given = set(cfg.to_dict()) - set(cfg.unset())

    # -- input size
    side = facts.median_side if recipe.size_side == "short" else facts.median_long_side
    cap = recipe.size_cap_gpu if device_type == "cuda" else recipe.size_cap_cpu
    if data_defaults.img_size:
        choose(
            "img_size",
            data_defaults.img_size,
            f"{data_defaults.img_size} px: {cfg.data}'s own size",
        )
    elif side and record is not None and fine is not None and fine.size_from_weights:
        size = min(record.input_size, max(recipe.size_floor, spec.min_img_size, _round32(side)))
        choose(
            "img_size",
            size,
            f"{size} px: the weights' own {record.input_size} px"
            + (f", median image {side} px" if size < record.input_size else ""),
        )
    elif side:
        size = min(cap, max(recipe.size_floor, spec.min_img_size, _round32(side)))
        choose(
            "img_size",
            size,
            f"{size} px: median image {side} px, capped at {cap} px on {device_type}",
        )
    else:
        choose("img_size", spec.default_img_size, f"{spec.default_img_size} px: {model}'s default")
    if (cfg.img_size or values["img_size"]) < spec.min_img_size:
        raise RecogError(
            f"model {model} needs images of at least {spec.min_img_size} px, "
            f"not {cfg.img_size or values['img_size']}"
        )

    # -- batch: at least 8 steps an epoch
    batch = min(recipe.batch_max, max(recipe.batch_min, _pow2_floor(facts.n_train / 8)))
    why = (
        f"batch {batch}: {facts.n_train} training images (the largest power of two in "
        f"[{recipe.batch_min}, {recipe.batch_max}] with >= 8 steps an epoch where the data allows)"
    )
    if recipe.batch_for_budget and cfg.epochs is not None and not (cfg.steps or cfg.time):
        smaller = batch_for_epochs(facts, recipe, batch, cfg.epochs, cfg.accumulate, world_size)
        if smaller < batch:
            spe = steps_per_epoch(facts.n_train, smaller, cfg.accumulate, world_size)
            batch, why = (
                smaller,
                (
                    f"batch {smaller}: --epochs {cfg.epochs} of {spe} steps reach the "
                    f"{planned_steps(facts, recipe):,.0f} steps planned from {facts.n_train} images"
                ),
            )
    choose("batch_size", batch, why)  # a batch the user (or the model) gave is kept
    batch = int(cfg.batch_size or values["batch_size"])
    effective = batch * cfg.accumulate * world_size

    # -- optimizer
    if cfg.optimizer == "sgd":
        lr = recipe.sgd_lr * max(effective / 64, 0.25)
        choose("lr", float(f"{lr:.3g}"), f"lr {lr:.3g}: SGD {recipe.sgd_lr} x batch {effective}/64")
    else:
        lr = recipe.lr * math.sqrt(effective / recipe.lr_batch)
        choose(
            "lr",
            float(f"{lr:.3g}"),
            f"lr {lr:.3g}: AdamW {recipe.lr:g} at batch {recipe.lr_batch}, "
            f"square-root scaled to batch {effective}",
        )
    choose("weight_decay", recipe.weight_decay)
    choose("schedule", "cosine")
    choose("label_smoothing", recipe.label_smoothing)

    # -- augmentation
    if recipe.strong_below and facts.n_train < recipe.strong_below:
        choose(
            "augment", "strong", f"augment strong: fewer than {recipe.strong_below} training images"
        )
    else:
        choose("augment", "standard")
    choose("hflip", data_defaults.hflip if data_defaults.hflip is not None else recipe.hflip)
    choose("crop_pct", data_defaults.crop_pct)
    augment = cfg.augment or values["augment"]
    if fine is not None and fine.min_scale is not None and cfg.augment is None:
        choose("min_scale", data_defaults.min_scale or fine.min_scale)
    choose("min_scale", data_defaults.min_scale or recipe.min_scales[augment])
    # fine-tuning: the new head alone first, then the whole network
    if fine is not None:
        first = (
            f"the new layers train alone for {fine.head_epochs:g} epoch, then "
            if fine.head_epochs
            else ""
        )
        choose(
            "head_epochs",
            fine.head_epochs,
            f"fine-tuning: {first}the pretrained layers at {fine.backbone_lr:g}x the rate",
        )
        choose("backbone_lr", fine.backbone_lr)
        # a fine-tuning run is short (10 epochs on hymenoptera) and its best epochs come at
        # the cosine's low-rate end: no early stop
        choose("patience", 0)
    choose("head_epochs", 0.0)
    choose("backbone_lr", 1.0)
    choose("elastic", 0.0)
    choose("mosaic", 0.0)

    # -- planned budget (steps rule), before the time cap
    spe = steps_per_epoch(facts.n_train, batch, cfg.accumulate, world_size)
    planned = _planned_epochs(cfg, facts, recipe, spe)
    choose("mosaic_off_epochs", mosaic_off_epochs(planned))
    if recipe.ema:
        decay = ema_decay(planned * spe)
        choose("ema", decay, f"EMA of the weights, decay {decay:.4f} (a tenth of the run)")
    else:
        choose("ema", 0.0)

    # -- off values, machine, bookkeeping
    choose("clip_grad", 0.0)
    choose("class_weights", NONE)
    choose("classes", list(facts.class_names))
    if cfg.amp == "auto" and device_type != "cpu":
        values["amp"] = "on" if device_type == "cuda" else "off"
    # on a CPU, `auto` stays for `resolve_budget`: the probe times float32 against bf16
    if cfg.sync_bn == "auto":
        values["sync_bn"] = "on" if device_type == "cuda" and world_size > 1 else "off"
    elif cfg.sync_bn == "on" and world_size > 1 and device_type != "cuda":
        # torch's SyncBatchNorm syncs CUDA tensors only (ValueError on CPU): refuse up front
        raise RecogError(f"--sync-bn on: needs CUDA devices (this job trains on {device_type})")
    if cfg.device == "auto":
        values["device"] = device_type
    if cfg.cache == "auto":
        from recog.data.classify import CACHE_AUTO_LIMIT

        values["cache"] = "on" if facts.n_train + facts.n_val <= CACHE_AUTO_LIMIT else "off"
    values["versions"] = versions()
    values["task"] = str(facts.task)
    chosen = frozenset(values) | frozenset(spec_chosen)
    return Resolution(dataclasses.replace(cfg, **values), notes, planned, chosen)


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


def _planned_epochs(cfg: TrainConfig, facts: DataFacts, recipe: TaskRecipe, spe: int) -> int:
    if cfg.epochs is not None and cfg.steps is not None and cfg.steps != cfg.epochs * spe:
        raise RecogError(
            f"--epochs {cfg.epochs} and --steps {cfg.steps} disagree "
            f"({cfg.epochs} epochs are {cfg.epochs * spe} steps here); give one of them"
        )
    if cfg.epochs is not None:
        return cfg.epochs
    if cfg.steps is not None:
        return max(1, math.ceil(cfg.steps / spe))
    return max(1, round(planned_steps(facts, recipe) / spe))


def resolve_budget(
    res: Resolution, facts: DataFacts, *, probe: Probe | None, world_size: int = 1
) -> Resolution:
    """Epochs, steps and time; then warm-up and patience that follow them."""
    cfg, notes = res.config, list(res.notes)
    values: dict[str, Any] = {}
    budget_cut = ""
    if cfg.amp == "auto":
        values["amp"], probe, why = _precision(probe)
        notes.append(why)
    spe = steps_per_epoch(facts.n_train, int(cfg.batch_size or 1), cfg.accumulate, world_size)
    epochs_given = cfg.epochs is not None or cfg.steps is not None
    epoch_seconds = (probe.step_seconds * spe + probe.val_seconds) if probe else 0.0
    if cfg.time:
        # the schedule follows the clock; epochs is only an upper bound
        bound = cfg.epochs or max(1, math.ceil(3 * cfg.time / max(epoch_seconds, 1e-3)) + 2)
        values["epochs"] = bound
        est = cfg.time / max(epoch_seconds, 1e-3)
        notes.append(
            f"--time {_fmt_seconds(cfg.time)}: the schedule follows the clock "
            f"(about {est:.0f} epochs of {epoch_seconds:.1f} s on this machine)"
        )
    else:
        epochs = res.planned_epochs
        values["time"] = 0.0
        if not epochs_given and probe is not None:
            fits = max(1, int(DEFAULT_TIME_CAP // max(epoch_seconds, 1e-3)))
            if fits < epochs:
                # The cap is a clock, not an epoch count fixed by three probe steps: a core
                # busy with something else during the probe planned 8 of 77 epochs (yolo_n,
                # issue 34).  The trainer re-plans every epoch from measured epoch times
                # (as under --time), up to the rule's plan; the schedule follows whichever
                # ends first, the clock or the plan.
                values["time"] = float(DEFAULT_TIME_CAP)
                notes.append(
                    f"budget: {DEFAULT_TIME_CAP // 60} min cap, about {fits} of the {epochs} "
                    f"planned epochs on this machine now; re-planned each epoch from measured "
                    f"times (give --time or --epochs for more)"
                )
                if fits < epochs / 2:
                    budget_cut = (
                        f"the {DEFAULT_TIME_CAP // 60}-minute cap fits about {fits * spe:,} of the "
                        f"{epochs * spe:,} planned steps on this machine; for the full plan give "
                        f"--time {_fmt_minutes(epochs * epoch_seconds)} or --epochs {epochs}"
                    )
        values["epochs"] = epochs
    epochs = int(values["epochs"])
    if cfg.steps is None or not epochs_given or cfg.time:
        values["steps"] = epochs * spe
    # what follows the run's length follows the capped one (raccoon: capped 76 -> 30
    # epochs kept 13 mosaic-off epochs planned for 76)
    budget = cfg.time or values["time"]
    planned_for = min(epochs, int(budget / max(epoch_seconds, 1e-3))) if budget else epochs
    if "mosaic_off_epochs" in res.chosen:
        values["mosaic_off_epochs"] = mosaic_off_epochs(max(1, planned_for))
    if "ema" in res.chosen and cfg.ema:
        values["ema"] = ema_decay(max(1, planned_for) * spe)
    if cfg.warmup_epochs is None:
        values["warmup_epochs"] = round(max(WARMUP_FRACTION * planned_for, 1 / spe), 3)
    if cfg.patience is None:
        # under --time the clock ends the run, so the schedule anneals to its end: no early stop
        # (the cap's clock only bounds a planned run, whose patience stays)
        values["patience"] = (
            0 if cfg.time else max(MIN_PATIENCE, math.ceil(PATIENCE_FRACTION * planned_for))
        )
    capped = not cfg.time and bool(values.get("time"))
    cfg = dataclasses.replace(cfg, **values)
    steps = epochs * spe
    if not cfg.time or capped:
        how = (
            "given"
            if epochs_given
            else (
                f"{res.planned_epochs * spe if not epochs_given else steps} steps planned from "
                f"{facts.n_train} images"
            )
        )
        eta = f", about {_fmt_seconds(epochs * epoch_seconds)} on this machine" if probe else ""
        notes.append(f"budget {steps:,} steps = {epochs} epochs of {spe} steps ({how}){eta}")
    return Resolution(cfg, notes, res.planned_epochs, res.chosen, budget_cut)


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
    spe = steps_per_epoch(facts.n_train, int(cfg.batch_size or 1), cfg.accumulate, world_size)
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

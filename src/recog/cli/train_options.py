"""`recog train`'s options, generated from `TrainConfig`'s fields, in groups, each with its help.

Every field of `recog.config.TrainConfig` becomes a flag (`img_size` ->
`--img-size`), so the CLI, the YAML config and the Python API cannot drift
apart.  `GROUPS` files each field under a heading; a field that no group
names yet (one added to the config later) still gets its flag, under "other
options", with its default.  Each option's help ends with its default: the
value itself, or "from the data" where the recipe (`recog.recipe`) chooses
it from the data, the model and the machine.  Parsing only: the argparse
default of every config flag is None, so `overrides` can tell a flag given
from one left out.

Nothing here may import torch: `recog train --help` reads this module
(tests/cli/test_cli_first_contact.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from recog.errors import RecogError

#: fields that are records of a run, never flags
HIDDEN = frozenset({"version", "versions", "pretrained", "mean", "std"})

#: (heading, fields) in the order `recog train --help` shows them
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("data", ("data", "task", "classes", "val_split", "group_by", "cache", "strict", "balanced")),
    ("model", ("model", "model_args", "weights", "freeze_backbone", "img_size")),
    ("fine-tuning", ("head_epochs", "backbone_lr")),
    (
        "schedule",
        (
            "epochs",
            "steps",
            "time",
            "batch_size",
            "optimizer",
            "lr",
            "weight_decay",
            "momentum",
            "schedule",
            "warmup_epochs",
            "accumulate",
            "clip_grad",
            "ema",
            "patience",
        ),
    ),  # fmt: skip
    ("loss", ("label_smoothing", "seg_loss", "class_weights")),
    (
        "augmentation",
        (
            "augment",
            "auto_augment",
            "hflip",
            "min_scale",
            "crop_pct",
            "mixup",
            "cutmix",
            "mosaic",
            "mosaic_off_epochs",
            "elastic",
        ),
    ),  # fmt: skip
    (
        "hardware and reproducibility",
        ("device", "amp", "sync_bn", "workers", "seed", "deterministic"),
    ),  # fmt: skip
    ("robustness (adversarial training)", ("adv_train", "adv_eps", "adv_steps", "adv_mix")),
    ("distillation", ("teacher", "distill_weight", "distill_temperature")),
    ("output and tracking", ("out", "name", "log", "log_uri")),
)
FALLBACK_GROUP = "other options"

#: what each option does (its default is added from the field, or from DEFAULTS)
HELP = {
    "data": "digits, shapes:..., a class-folder root (train/ + val/, or <class>/ split by "
    "--val-split), a path,label CSV, or a COCO / VOC / YOLO / mask-folder set",
    "task": "what to recognize",
    "classes": "comma-separated class names in label order (mask folders: of the values 0, 1, ...)",
    "val_split": "fraction held out for validation when the data has no val/ split "
    "(seeded by --seed, stratified per class)",
    "group_by": "keep each session whole on one side of the split: metadata columns of a "
    "path,label,... CSV (date,location) or a file-name pattern whose (group) names the session "
    "('^(\\d+)_': 041_066.png -> 041)",
    "cache": "decode and resize the images once into memory",
    "strict": "fail on the first corrupt image instead of skipping it",
    "balanced": "sample the classes equally often (classification)",
    "model": "registry name or timm:<name>; `recog models` lists them with their task and size",
    "model_args": "builder options as key=value, e.g. width=64 depth=4",
    "weights": "imagenet: the model's ImageNet file from its pip package (`recog weights` lists "
    "them); none: from scratch; a local file (safetensors or state dict); or `torchvision`, "
    "`timm`, `smp` for the library's file in the local torch / Hugging Face cache; nothing is "
    "downloaded",
    "freeze_backbone": "train the head only (with --weights)",
    "img_size": "input size in pixels",
    "head_epochs": "fine-tuning: epochs that train the new head alone before the whole network "
    "(0: off)",
    "backbone_lr": "fine-tuning: the rate of every layer but the head, as a fraction of --lr",
    "epochs": "training epochs",
    "steps": "training budget in optimizer steps, instead of --epochs",
    "time": "fit the run into this much training time, e.g. 90s, 10m, 1h "
    "(the schedule follows the clock)",
    "batch_size": "images per step (per process under torchrun)",
    "optimizer": "the optimizer",
    "lr": "peak learning rate",
    "weight_decay": "decoupled weight decay (AdamW) or L2 (SGD)",
    "momentum": "SGD momentum",
    "schedule": "learning-rate schedule after the warm-up",
    "warmup_epochs": "linear warm-up, in epochs (fractions allowed)",
    "accumulate": "gradient accumulation: batches per optimizer step",
    "clip_grad": "clip the gradient norm at this value (0: off)",
    "ema": "keep an exponential moving average of the weights with this decay, e.g. 0.999 (0: off)",
    "patience": "stop after this many epochs without improvement (0: off)",
    "label_smoothing": "label smoothing of the classification loss",
    "seg_loss": "segmentation loss: cross-entropy, Dice, or their sum",
    "class_weights": "segmentation: comma-separated loss weight per class",
    "augment": "strength of the training augmentation",
    "auto_augment": "an automatic augmentation policy on top (classification)",
    "hflip": "horizontal-flip probability",
    "min_scale": "smallest crop (classification) or scale (detection) of the augmentation, "
    "as a fraction",
    "crop_pct": "classification: centre-crop fraction at evaluation",
    "mixup": "MixUp alpha (classification; 0: off)",
    "cutmix": "CutMix alpha (classification; 0: off)",
    "mosaic": "detection: probability of a 4-image mosaic",
    "mosaic_off_epochs": "detection: the last epochs train without mosaic",
    "elastic": "segmentation: probability of an elastic deformation (cells, membranes)",
    "device": "auto, cpu, cuda, cuda:N or mps",
    "amp": "mixed precision (training only; every validation runs in float32)",
    "sync_bn": "BatchNorm statistics over the global batch under torchrun (CUDA only)",
    "workers": "data-loading worker processes (0: in the training process)",
    "seed": "seed of the split, the data order and the initialization",
    "deterministic": "deterministic algorithms (slower; a rerun repeats the metrics)",
    "adv_train": "adversarial training: every batch is attacked first "
    "(pgd; fgsm-rs, one random-start step; trades)",
    "adv_eps": "adversarial training radius, L-inf in [0, 1] pixels, e.g. 8/255",
    "adv_steps": "attack steps per training batch for pgd and trades",
    "adv_mix": "weight of the clean images' loss beside the attacked ones' for pgd and "
    "fgsm-rs (0: attacked only, Madry et al.; 0.5: half each, Goodfellow et al.)",
    "teacher": "knowledge distillation: a trained run of the same task and classes teaches "
    "this one",
    "distill_weight": "distillation: loss = (1 - W) * task loss + W * distillation term",
    "distill_temperature": "distillation: softens classify logits and YOLO box bins",
    "out": "run directory",
    "name": "name of the run directory under runs/<task>/",
    "log": "experiment tracking: TensorBoard event files in RUN/tensorboard/, an MLflow run, "
    "or both",
    "log_uri": "--log mlflow: the tracking URI",
}

#: defaults that the field's value alone does not say.  "from the data": the recipe
#: chooses it (recog.recipe); the 15 min is recipe.DEFAULT_TIME_CAP (a test keeps them equal)
DEFAULTS = {
    "task": "inferred from the data or the model",
    "classes": "from the data",
    "cache": "auto: on for up to 20,000 images",
    "model": "from the data: the task's default model for the images' size",
    "weights": "from the data: imagenet where the model has ImageNet weights on this machine "
    "(the task's default model does), else none, from scratch",
    "head_epochs": "from the data: 1 when fine-tuning pretrained weights, else 0, off",
    "backbone_lr": "from the data: 1, the same rate as the head",
    "img_size": "from the data: the images' median size, capped per task and device",
    "epochs": "from the data: a budget in steps planned from the data size, capped to fit "
    "15 min on this machine",
    "steps": "from --epochs",
    "time": "no limit",
    "batch_size": "from the data: >= 8 steps an epoch, at most the task's 16 or 32",
    "lr": "from the data: the model's, else the task's, square-root scaled to the batch",
    "weight_decay": "the model's, else the task's (0.05 classify, 5e-4 detect, 1e-4 segment)",
    "schedule": "cosine",
    "warmup_epochs": "from the data: 5%% of the run's steps",
    "clip_grad": "0, off",
    "ema": "from the data for detection (a tenth of the run's steps), else 0, off",
    "patience": "from the data: half the epochs, at least 5; off under --time",
    "label_smoothing": "the task's (0.1 classify, else 0)",
    "class_weights": "none, equal weights",
    "augment": "from the data: strong for segmentation sets under 100 images, else standard",
    "hflip": "from the data: 0.5; 0 for digits",
    "min_scale": "from the data: per dataset and --augment",
    "crop_pct": "from the data: per dataset",
    "mosaic": "the model's own (YOLO: 1), else 0, off",
    "mosaic_off_epochs": "from the data: a sixth of the epochs",
    "elastic": "0, off",
    "device": "auto: cuda, then mps, then cpu",
    "amp": "auto: on for CUDA; on a CPU, bf16 where the timing probe measures it faster",
    "sync_bn": "auto: on for CUDA with more than one process",
    "adv_eps": "8/255",
    "out": "runs/<task>/<data>-<model>, numbered when taken",
    "name": "<data>-<model>",
    "log": "none",
    "log_uri": "auto: MLFLOW_TRACKING_URI, else sqlite:///RUN/../mlflow.db",
}

#: number fields given as text and parsed by `overrides`
PARSED = frozenset({"time", "adv_eps"})

#: metavars clearer than the flag's own name
METAVARS = {"time": "DURATION", "adv_eps": "EPS", "teacher": "RUN", "classes": "A,B,...",
            "data": "PATH", "model": "NAME", "weights": "WEIGHTS", "out": "DIR",
            "device": "DEVICE"}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser, config: type | None = None) -> None:
    """Every field of `config` (default `TrainConfig`) as a grouped flag, then the run options."""
    if config is None:
        from recog.config import TrainConfig

        config = TrainConfig
    fields = {f.name: f for f in dataclasses.fields(config) if f.name not in HIDDEN}
    hints = get_type_hints(config)
    groups = {}
    for title, names in GROUPS:
        groups[title] = parser.add_argument_group(title)
        for name in names:
            if name in fields:
                _add_field(groups[title], fields.pop(name), hints[name])
    if fields:  # fields added to the config after this table: shown, never dropped
        other = parser.add_argument_group(
            FALLBACK_GROUP, "settings of the run config that have no heading here yet"
        )
        for name, f in fields.items():
            _add_field(other, f, hints[name])
    run = groups["output and tracking"]
    run.add_argument("--config", type=Path, metavar="YAML",
                     help="a config.yaml to start from; flags override it (default: none)")  # fmt: skip
    run.add_argument("--resume", type=Path, metavar="RUN",
                     help="continue an interrupted run from RUN/last.ckpt (default: a new run)")  # fmt: skip
    run.add_argument(
        "--exist-ok",
        action="store_true",
        help="let --out name an existing run: its old outputs are removed, then it is trained "
        "anew (default: off, an existing run is refused)",
    )


def _add_field(group: Any, f: dataclasses.Field, hint: Any) -> None:
    flag = "--" + f.name.replace("_", "-")
    about = HELP.get(f.name, f"the run config's `{f.name}`")
    kwargs: dict[str, Any] = {"dest": f.name, "default": None}
    if f.name in METAVARS:
        kwargs["metavar"] = METAVARS[f.name]
    elif _base(hint) in (int, float):
        kwargs["metavar"] = "N" if _base(hint) is int else "X"
    choices = _choices(hint)
    if hint is bool:
        kwargs["action"] = "store_true"
    elif choices:
        kwargs["choices"] = choices
    elif get_origin(_base(hint)) is dict:
        kwargs |= {"nargs": "+", "metavar": "KEY=VALUE"}
    else:
        base = _base(hint)
        # time and adv_eps are text that `overrides` parses (10m, 8/255)
        kwargs["type"] = base if base in (int, float) and f.name not in PARSED else str
    kwargs["help"] = f"{about} (default: {_default_text(f)})"
    action = group.add_argument(flag, **kwargs)
    if f.name == "model":
        action.completer = _model_names  # argcomplete: the registry, imported on a Tab only


def _base(hint: Any) -> Any:
    """`X` of `X | None`."""
    if get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in get_args(hint) if a is not type(None))
    return hint


def _choices(hint: Any) -> list[str] | None:
    base = _base(hint)
    if get_origin(base) is Literal:
        return [str(a) for a in get_args(base)]
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return [str(m.value) for m in base]
    return None


def _default_text(f: dataclasses.Field) -> str:
    """What a left-out flag becomes, for its help (`%` doubled: argparse formats help)."""
    if f.name in DEFAULTS:
        return DEFAULTS[f.name]
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        value = f.default
    if value is None:
        return "from the data"  # left to the recipe
    if isinstance(value, bool):
        return "on" if value else "off"
    if value in ({}, [], ""):
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("%", "%%")


def _model_names(**_: Any) -> list[str]:
    """The registered model names, for shell completion of --model (this imports torch)."""
    from recog.models.factory import list_models

    return [*list_models(None), "timm:"]


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def overrides(ns: argparse.Namespace, config: type | None = None) -> dict[str, Any]:
    """The config fields given on the command line, as `TrainConfig` takes them."""
    from recog.config import TrainConfig, parse_duration, parse_eps

    out: dict[str, Any] = {}
    for f in dataclasses.fields(config or TrainConfig):
        value = getattr(ns, f.name, None)
        if value is None or value is False:
            continue
        if f.name == "model_args":
            pairs = {}
            for item in value:
                if "=" not in item:
                    raise RecogError(f"--model-args: expected KEY=VALUE, not {item!r}")
                key, raw = item.split("=", 1)
                pairs[key] = _parse_value(raw)
            value = pairs
        elif f.name == "time":
            value = parse_duration(value)
        elif f.name == "adv_eps":
            value = parse_eps(value, flag="--adv-eps")
        elif f.name == "classes":
            value = [name.strip() for name in str(value).split(",")]
        out[f.name] = value
    return out

"""Resolving a run's config: which task the data implies, the survey, the recipe's first step.

`resolve_config` is what `recog.api.train` calls before loading any data; it
asks the task for a survey of the data and hands the facts to `recog.recipe`.
"""

from __future__ import annotations

from recog import recipe
from recog.config import NONE, TrainRequest, parse_class_weights
from recog.data.formats import TASK_FORMATS, DataFormat, detect_format, infer_task
from recog.engine.distributed import pick_device
from recog.errors import RecogError
from recog.models.arguments import check_model_args
from recog.models.factory import get_spec
from recog.tasks import Task, task_class
from recog.types import DataFacts, TaskName

#: the datasets recog generates itself
BUILT_IN = (DataFormat.DIGITS, DataFormat.SHAPES)


def _task_class(cfg: TrainRequest) -> type[Task]:
    if "://" in cfg.data:  # before a loader answers "no such file" (issue 33)
        raise RecogError(
            f"--data {cfg.data}: training reads data on this machine; copy it here first "
            f"(URLs are for `recog predict RUN URL --out FILE.jsonl`)"
        )
    if cfg.model is not None:
        spec = get_spec(cfg.model)
        task = TaskName(cfg.task or spec.task)
        if task != spec.task:
            raise RecogError(f"model {cfg.model} is a {spec.task} model, not {task}")
        _check_built_in(cfg.data, cfg.model, task)
        return task_class(spec)
    return task_class(cfg.task or infer_task(cfg.data))


def _check_built_in(data: str, model: str, task: TaskName) -> None:
    """A built-in set the model's task does not read is named as such, with the task's own
    (`--model yolo_n --data digits` was answered "digits: no such file or directory")."""
    fmt = detect_format(data, among=BUILT_IN)
    if fmt is not None and fmt not in TASK_FORMATS[task]:
        others = [str(f) for f in BUILT_IN if f in TASK_FORMATS[task]]
        raise RecogError(
            f"--data {data}: a built-in dataset that {task} models do not read, and {model} is "
            f"a {task} model; built-in {task} data: {', '.join(others) or 'none'}"
        )


def resolve_config(
    cfg: TrainRequest, *, device_type: str | None = None, world_size: int = 1
) -> tuple[recipe.Resolution, DataFacts, type[Task]]:
    """The run's plan (everything but the timed budget), from a survey of the data: the
    request's task, its survey and `recipe.resolve`."""
    from recog.data import data_defaults

    task_cls = _task_class(cfg)
    facts = task_cls.data.survey(cfg)
    _check_class_weights(cfg, task_cls, facts)
    device = device_type or (cfg.device if cfg.device != "auto" else pick_device("auto").type)
    res = recipe.resolve(
        cfg,
        facts,
        task_cls.recipe,
        device_type=device.split(":")[0],
        data_defaults=data_defaults(cfg.data),
        world_size=world_size,
    )
    # before any data is loaded or file written: the same check create_model makes
    check_model_args(str(res.config.model), get_spec(str(res.config.model)).builder,
                     res.config.model_args)  # fmt: skip
    return res, facts, task_cls


def _check_class_weights(cfg: TrainRequest, task_cls: type[Task], facts: DataFacts) -> None:
    """`--class-weights` is used or refused, before anything is written (issue 33: a
    classification run trained on, ignoring them)."""
    if cfg.class_weights in (None, NONE):
        return
    if not task_cls.recipe.weighs_classes:
        raise RecogError(
            f"--class-weights: a {task_cls.name} model's loss takes no class weights "
            f"(semantic segmentation only)"
        )
    parse_class_weights(str(cfg.class_weights), facts.num_classes)

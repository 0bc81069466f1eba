"""Resolving a run's config: which task the data implies, the survey, the recipe's first step.

`resolve_config` is what `recog.api.train` calls before loading any data; it
asks the task for a survey of the data and hands the facts to `recog.recipe`.
"""

from __future__ import annotations

from recog import recipe
from recog.config import TrainConfig
from recog.data.formats import infer_task
from recog.engine.distributed import pick_device
from recog.errors import RecogError
from recog.models.factory import get_spec
from recog.tasks import Task, task_class
from recog.types import DataFacts, TaskName


def _task_class(cfg: TrainConfig) -> type[Task]:
    if cfg.model is not None:
        spec = get_spec(cfg.model)
        task = TaskName(cfg.task or spec.task)
        if task != spec.task:
            raise RecogError(f"model {cfg.model} is a {spec.task} model, not {task}")
        return task_class(spec)
    return task_class(cfg.task or infer_task(cfg.data))


def resolve_config(
    cfg: TrainConfig, *, device_type: str | None = None, world_size: int = 1
) -> tuple[recipe.Resolution, DataFacts, type[Task]]:
    """The recipe's first step (everything but the timed budget), from a survey of the data."""
    from recog.data import data_defaults

    task_cls = _task_class(cfg)
    if cfg.time is not None and cfg.time < 0:
        raise RecogError(f"--time must be positive, not {cfg.time}")
    for key in ("epochs", "steps", "batch_size", "img_size"):
        value = getattr(cfg, key)
        if value is not None and value < 1:
            raise RecogError(f"--{key.replace('_', '-')} must be at least 1, not {value}")
    facts = task_cls.survey(cfg)
    device = device_type or (cfg.device if cfg.device != "auto" else pick_device("auto").type)
    res = recipe.resolve(
        cfg,
        facts,
        task_cls.recipe,
        device_type=device.split(":")[0],
        data_defaults=data_defaults(cfg.data),
        world_size=world_size,
    )
    return res, facts, task_cls

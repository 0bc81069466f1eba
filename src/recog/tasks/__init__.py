"""The task map: task name -> Task class.  New tasks register here, nowhere else.

`task_class` is the one place a run's Task class is picked: from the model's
spec when there is a model (Mask R-CNN's `spec.instance` gives the instance
task under the task name "segment"), else from the task name alone.
"""

from __future__ import annotations

from recog.models.registry import ModelSpec
from recog.tasks.base import Task
from recog.tasks.classify import ClassifyTask
from recog.tasks.detect import DetectTask
from recog.tasks.instance import InstanceSegmentTask
from recog.tasks.segment import SegmentTask
from recog.types import TaskName

TASKS: dict[TaskName, type[Task]] = {
    TaskName.CLASSIFY: ClassifyTask,
    TaskName.DETECT: DetectTask,
    TaskName.SEGMENT: SegmentTask,
}


def task_class(model: ModelSpec | TaskName | str) -> type[Task]:
    """The Task class for a model's spec, or for a task name when no model is chosen yet."""
    if isinstance(model, ModelSpec):
        return InstanceSegmentTask if model.instance else TASKS[model.task]
    return TASKS[TaskName(model)]


__all__ = [
    "TASKS",
    "ClassifyTask",
    "DetectTask",
    "InstanceSegmentTask",
    "SegmentTask",
    "Task",
    "task_class",
]

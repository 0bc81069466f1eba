"""The task map: task name -> Task class.  New tasks register here, nowhere else."""

from __future__ import annotations

from recog.tasks.base import Accumulator, Task
from recog.tasks.classify import ClassifyTask
from recog.types import TaskName

TASKS: dict[TaskName, type[Task]] = {
    TaskName.CLASSIFY: ClassifyTask,
}

__all__ = ["TASKS", "Accumulator", "ClassifyTask", "Task"]

"""The task map: task name -> Task class.  New tasks register here, nowhere else."""

from __future__ import annotations

from recog.tasks.base import Task
from recog.tasks.classify import ClassifyTask
from recog.tasks.detect import DetectTask
from recog.tasks.segment import InstanceSegmentTask, SegmentTask
from recog.types import TaskName

TASKS: dict[TaskName, type[Task]] = {
    TaskName.CLASSIFY: ClassifyTask,
    TaskName.DETECT: DetectTask,
    TaskName.SEGMENT: SegmentTask,
}

__all__ = [
    "TASKS",
    "ClassifyTask",
    "DetectTask",
    "InstanceSegmentTask",
    "SegmentTask",
    "Task",
]

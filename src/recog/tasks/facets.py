"""Facets: what one feature alone asks of a task, kept out of the Task core (issue 35).

The core (`recog.tasks.base.Task`) is what the engine, the evaluator and
prediction need.  A feature that needs more of a task (the doctor, the report,
explanations, attacks, distillation, calibration, batch files, the server)
defines its own facet in its own package: a `Protocol` of what it asks, and a
`FacetTable` that names, once, the implementation each task gives, or that
the task declines.  The feature then asks `TABLE.of(task)`, never the task.

Why a table by task name rather than `functools.singledispatch` or methods on
the Task: several facet calls have no task instance yet (the doctor reads the
data before any model exists), the table is one dictionary a reader can see
whole, and a declined facet is one sentence the user reads (`detect models
have no distillation`), not an AttributeError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from recog.errors import RecogError
from recog.names import TaskName

F = TypeVar("F")


class FacetTable(Generic[F]):
    """Which implementation of one feature's facet each task gives.

    `by_task` maps a task name to a factory of the facet (a class, usually,
    or a function that imports one: the table is built at import time, the
    implementations when first asked).  `declined` is the RecogError's text
    for a task that gives none, with `{task}` for its name.
    """

    def __init__(self, declined: str, by_task: Mapping[TaskName, Callable[[], F]]):
        self.declined = declined
        self._factories = dict(by_task)
        self._made: dict[TaskName, F] = {}

    def has(self, task: object) -> bool:
        """Whether `task` (a Task, its class or its name) gives this facet."""
        return _task_name(task) in self._factories

    def of(self, task: object) -> F:
        """The facet `task` gives, or a RecogError saying that it gives none."""
        name = _task_name(task)
        if name not in self._factories:
            raise RecogError(self.declined.format(task=name))
        if name not in self._made:
            self._made[name] = self._factories[name]()
        return self._made[name]

    def tasks(self) -> list[TaskName]:
        """The tasks that give this facet."""
        return list(self._factories)


def _task_name(task: object) -> TaskName:
    """A task name from a Task, a Task class or a name."""
    if isinstance(task, str):  # a TaskName too (its enum `.name` is "CLASSIFY")
        return TaskName(task)
    return TaskName(str(getattr(task, "name")))

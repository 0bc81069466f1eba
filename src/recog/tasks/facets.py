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
from typing import Any, Generic, TypeVar

from recog.errors import RecogError
from recog.names import TaskName

F = TypeVar("F")


class FacetTable(Generic[F]):
    """Which implementation of one feature's facet each task gives.

    `by_task` maps a task name to a factory of the facet (a class, usually,
    or a function that imports one: the table is built at import time, the
    implementations when first asked).  `declined` is the RecogError's text
    for a task that gives none, with `{task}` for its name.

    `by_class` maps a Task class to a factory, looked up (through the task's
    class hierarchy) before its name: Mask R-CNN's `InstanceSegmentTask` is
    named "segment" but answers as a detector, so a name alone cannot tell it
    from semantic segmentation.  A lookup by name alone never sees it.
    """

    def __init__(
        self,
        declined: str,
        by_task: Mapping[TaskName, Callable[[], F]],
        *,
        by_class: Mapping[type, Callable[[], F]] | None = None,
    ):
        self.declined = declined
        self._factories = dict(by_task)
        self._by_class = dict(by_class or {})
        self._made: dict[Callable[[], F], F] = {}

    def has(self, task: object) -> bool:
        """Whether `task` (a Task, its class or its name) gives this facet."""
        return self._factory(task) is not None

    def of(self, task: object) -> F:
        """The facet `task` gives, or a RecogError saying that it gives none."""
        factory = self._factory(task)
        if factory is None:
            raise RecogError(self.declined.format(task=_task_name(task)))
        if factory not in self._made:
            self._made[factory] = factory()
        return self._made[factory]

    def tasks(self) -> list[TaskName]:
        """The tasks that give this facet."""
        return list(self._factories)

    def _factory(self, task: object) -> Callable[[], F] | None:
        """The factory for `task`: its class's (or an ancestor's) in `by_class`, else its
        name's, else None."""
        if not isinstance(task, str):
            cls = task if isinstance(task, type) else type(task)
            for klass in cls.__mro__:
                if klass in self._by_class:
                    return self._by_class[klass]
        return self._factories.get(_task_name(task))


def _task_name(task: Any) -> TaskName:
    """A task name from a Task, a Task class or a name."""
    if isinstance(task, str):  # a TaskName too (its enum `.name` is "CLASSIFY")
        return TaskName(task)
    return TaskName(str(task.name))

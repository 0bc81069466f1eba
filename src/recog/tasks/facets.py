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

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from recog.errors import RecogError
from recog.names import TaskName

F = TypeVar("F")


class FacetTable(Generic[F]):
    """Which implementation of one feature's facet each task gives, named by keyword.

    `classify`, `detect`, `segment`: a factory of the facet for that task (a
    class, usually: the table is built at import time, the implementations when
    first asked); a task left out declines.  `instance`: Mask R-CNN's
    `InstanceSegmentTask`, named "segment" but answering as a detector in most
    features, so a name alone cannot tell it from semantic segmentation: it is
    found by its class (through the hierarchy) before its name, and without an
    entry of its own it takes the "segment" one.  `declined` is the
    RecogError's text for a task that gives none, with `{task}` for its name.
    """

    def __init__(
        self,
        declined: str,
        *,
        classify: Callable[[], F] | None = None,
        detect: Callable[[], F] | None = None,
        segment: Callable[[], F] | None = None,
        instance: Callable[[], F] | None = None,
    ):
        from recog.tasks.instance import InstanceSegmentTask

        self.declined = declined
        named = {TaskName.CLASSIFY: classify, TaskName.DETECT: detect, TaskName.SEGMENT: segment}
        self._factories = {name: f for name, f in named.items() if f is not None}
        self._by_class = {InstanceSegmentTask: instance} if instance is not None else {}
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

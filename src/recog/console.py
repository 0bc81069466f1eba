"""What recog tells a person on the terminal: progress bars with rate and ETA, and warnings.

The bottom of the layers, so that data loaders, the engine and the CLI all
speak through it.  rich draws the bars on a terminal; off a terminal (CI,
logs) they stay quiet.  Every warning goes through `warn` (one format,
`recog: warning: ...`, on stderr).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


class RateColumn(ProgressColumn):
    """Items per second, e.g. `412 img/s`."""

    def __init__(self, unit: str = "img") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("   -- " + self.unit + "/s" if speed is None else f"{speed:6.0f} {self.unit}/s")


@contextmanager
def progress_bar(*, enabled: bool = True, unit: str = "img") -> Iterator[Progress]:
    """A rich Progress with description, bar, M/N, rate, elapsed and ETA."""
    con = console()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=con,
        transient=True,
        disable=not enabled or not con.is_terminal,
    )
    with progress:
        yield progress


def warn(message: str) -> None:
    """One warning line on stderr: `recog: warning: <message>`."""
    print(f"recog: warning: {message}", file=sys.stderr)

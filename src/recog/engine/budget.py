"""The run's budget: the time cap (`--time`) and the step cap (`--steps`), one object with its state in plain sight.

The trainer asks it three things: how far along the time is (the learning
rate's schedule follows the clock), whether an epoch may start and how many
epochs the clock now fits (re-planned each epoch from the epochs' measured
times, so a plan made while the machine was busy grows once it is not), and
whether an epoch's training must stop (at the step cap, or where the epoch's
validation, as long as the last one's, still fits in the time left).

What a resume must carry is `state_dict()`: the seconds of the finished
epochs, saved in `last.ckpt` beside the loop's other counters; the clock of a
resumed run starts from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Budget:
    """`time_cap`: the seconds the run may take (0: none); `step_cap`: the optimizer steps
    to stop at (0: none)."""

    time_cap: float = 0.0
    step_cap: int = 0
    #: seconds of the finished epochs, those before a resume included (`last.ckpt`'s "seconds")
    spent: float = 0.0
    #: `time.perf_counter()` at the start of the running epoch; None between epochs
    started: float | None = None
    #: the last finished epoch's validation seconds (what an epoch's training leaves time for)
    val_seconds: float = 0.0

    @classmethod
    def of(
        cls, *, seconds: float | None, steps: int | None, epochs: int, steps_per_epoch: int
    ) -> Budget:
        """The budget of a run of `epochs` epochs of `steps_per_epoch` optimizer steps: a step
        cap only where it stops before the epochs end (`--steps N` trains N optimizer steps,
        not the whole epochs they round up to)."""
        cap = int(steps or 0)
        within = cap if cap < epochs * steps_per_epoch else 0
        return cls(time_cap=float(seconds or 0.0), step_cap=within)

    # ------------------------------------------------------------------ the clock
    def elapsed(self) -> float:
        """Seconds of the run so far: the finished epochs plus the running one's."""
        running = time.perf_counter() - self.started if self.started is not None else 0.0
        return self.spent + running

    def progress(self) -> float:
        """The fraction of the time cap used (what the schedule follows under `--time`)."""
        return self.elapsed() / self.time_cap

    # ------------------------------------------------------------------ epochs
    def plan(self, epoch: int, epochs: int, agree: Callable[[float], float]) -> int | None:
        """The epochs the run now plans (shown as the epoch's `k/N`), or None when epoch
        `epoch` (0-based, that many finished) must not start: less than half an epoch's
        measured time is left.  `agree` makes every rank decide on rank 0's clock."""
        if not self.time_cap:
            return epochs
        per_epoch = self.spent / epoch if epoch else 0.0
        left = agree(self.time_cap - self.spent)
        if epoch and left < per_epoch / 2:
            return None
        return min(epochs, round(self.time_cap / per_epoch)) if per_epoch else epochs

    def start_epoch(self) -> float:
        """Starts the running epoch's clock; returns its start (`time.perf_counter()`)."""
        self.started = time.perf_counter()
        return self.started

    def end_epoch(self, seconds: float, val_seconds: float) -> None:
        """Counts a finished epoch's `seconds`, of which `val_seconds` were its validation."""
        self.spent += seconds
        self.val_seconds = val_seconds
        self.started = None

    # ------------------------------------------------------------------ stops
    @property
    def bounded(self) -> bool:
        """Whether an epoch's training may have to stop before its end."""
        return bool(self.time_cap or self.step_cap)

    def steps_reached(self, step: int) -> bool:
        """Whether `step` optimizer steps reach the step cap (also on a resume)."""
        return bool(self.step_cap) and step >= self.step_cap

    def over(self, step: int) -> bool:
        """Whether the running epoch's training must stop after `step` optimizer steps of the
        run: the step cap is reached, or only its validation's time is left."""
        over_time = bool(self.time_cap) and self.elapsed() >= self.time_cap - self.val_seconds
        return over_time or self.steps_reached(step)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.spent}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.spent = float(state["seconds"])

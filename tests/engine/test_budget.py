"""The run's budget (`recog.engine.budget.Budget`): the clock, the epochs' plan and the stops
read only the object's own fields, and a resume gives it back what `last.ckpt` saved."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from recog.engine import budget as budget_module
from recog.engine.budget import Budget


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(budget_module, "time", SimpleNamespace(perf_counter=fake))
    return fake


def agree(value: float) -> float:  # one process: rank 0's value is its own
    return value


def test_a_step_cap_counts_only_where_it_ends_before_the_epochs():
    assert Budget.of(seconds=None, steps=5, epochs=1, steps_per_epoch=45).step_cap == 5
    assert Budget.of(seconds=None, steps=90, epochs=2, steps_per_epoch=45).step_cap == 0
    assert not Budget.of(seconds=None, steps=None, epochs=3, steps_per_epoch=45).bounded


def test_the_clock_counts_finished_epochs_and_the_running_one(clock):
    budget = Budget(time_cap=100.0)
    assert budget.elapsed() == 0.0
    budget.start_epoch()
    clock.now += 7.0
    assert budget.elapsed() == 7.0 and budget.progress() == 0.07
    budget.end_epoch(8.0, val_seconds=2.0)
    clock.now += 50.0  # between epochs the clock stands still
    assert budget.elapsed() == 8.0 and budget.started is None


def test_the_plan_is_remade_from_the_measured_epochs_and_stops_at_half_an_epoch(clock):
    budget = Budget(time_cap=100.0)
    assert budget.plan(0, 50, agree) == 50  # nothing measured yet: the plan's bound
    budget.end_epoch(20.0, val_seconds=5.0)
    assert budget.plan(1, 50, agree) == 5  # 100 s at 20 s an epoch
    budget.end_epoch(70.0, val_seconds=5.0)  # 90 s: 10 s left, under half of 45 s an epoch
    assert budget.plan(2, 50, agree) is None
    assert Budget().plan(7, 50, agree) == 50  # no time cap: the epochs as planned


def test_an_epoch_stops_where_its_validation_still_fits_or_at_the_step_cap(clock):
    budget = Budget(time_cap=100.0, step_cap=30)
    budget.end_epoch(80.0, val_seconds=10.0)
    budget.start_epoch()
    clock.now += 9.0
    assert not budget.over(step=10)
    clock.now += 1.0  # 90 s used, the last validation took 10
    assert budget.over(step=10)
    assert Budget(step_cap=30).over(step=30) and not Budget(step_cap=30).over(step=29)


def test_a_resume_restores_the_seconds_spent(clock):
    budget = Budget(time_cap=60.0)
    budget.end_epoch(12.5, val_seconds=1.0)
    resumed = Budget(time_cap=60.0)
    resumed.load_state_dict(budget.state_dict())
    assert resumed.state_dict() == {"seconds": 12.5} and resumed.elapsed() == 12.5

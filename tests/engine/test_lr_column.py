"""results.csv records each epoch's learning rate (the report's lr panel), as the schedule sets it."""

from __future__ import annotations

import math

import torch

from recog.engine.logging import ResultsTable
from recog.engine.optim import build_scheduler


def test_lr_column_follows_the_schedule(digits):
    cfg = digits.config
    rows = ResultsTable.read(digits.run_dir / "results.csv")
    assert [row["epoch"] for row in rows] == [1, 2] and all("lr" in row for row in rows)
    train = digits.task.data.splits(cfg).train
    steps = math.ceil(math.ceil(len(train) / cfg.batch_size) / cfg.accumulate)
    # the same schedule stepped alone: each row holds the rate after its epoch's last step
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=float(cfg.lr))
    scheduler = build_scheduler(cfg, optimizer, steps)
    for row in rows:
        for _ in range(steps):
            optimizer.step()
            scheduler.step()
        assert math.isclose(row["lr"], optimizer.param_groups[0]["lr"], rel_tol=1e-5)
    # and the schedule is what the config says: cosine from cfg.lr down to 1% of it at the end
    assert cfg.schedule == "cosine" and not cfg.time
    assert math.isclose(rows[-1]["lr"], 0.01 * float(cfg.lr), rel_tol=1e-5)
    assert rows[0]["lr"] > rows[-1]["lr"]

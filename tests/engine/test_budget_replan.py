"""The time cap is a clock the trainer re-plans against each epoch, not an epoch count fixed by the
probe: a probe taken while the machine was busy (here: a probe that reports slow steps) plans
one epoch, the run re-plans upward from its measured epochs, and the cut is said at the start,
at the end and in metrics.json."""

from __future__ import annotations

import json

import recog
from recog import recipe
from recog.recipe import Probe


def _tiny_set(root):
    """Two classes of 40 16-px images: an epoch takes a fraction of a second."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("dark", "light")):
        (root / name).mkdir(parents=True)
        for i in range(40):
            pixels = rng.integers(0, 120, (16, 16, 3)) + 120 * k
            Image.fromarray(pixels.astype("uint8")).save(root / name / f"{i}.png")
    return root


def test_a_busy_probe_is_replanned_upward_and_the_cut_is_said(tmp_path, monkeypatch, capsys):
    import recog.engine.probe as probe_module

    # the probe "measured" 1 s a step (a core busy with something else); the real steps take
    # a few milliseconds.  A 10-second cap then fits about 3 of the planned epochs.
    monkeypatch.setattr(
        probe_module, "probe", lambda *a, **k: Probe(step_seconds=1.0, val_seconds=1.0)
    )
    monkeypatch.setattr(recipe, "DEFAULT_TIME_CAP", 10)
    data = _tiny_set(tmp_path / "data")
    rec = recog.train(str(data), "cnn", model_args={"width": 8}, out=str(tmp_path / "run"))
    err = capsys.readouterr().err
    cfg = rec.config
    spe = recipe.steps_per_epoch(64, int(cfg.batch_size), 1)
    fits = 10 // (spe + 1)
    assert cfg.time == 10 and cfg.epochs > 2 * fits
    assert f"  warning    the 0-minute cap fits about {fits * spe:,} of the" in err  # at the start
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["planned_steps"] == cfg.epochs * spe
    assert metrics["fitted_steps"] > 2 * fits * spe  # re-planned upward from measured epochs
    said = "recog: warning: the run took" in err  # the end of the run says a cut of over half
    assert said == (metrics["fitted_steps"] < metrics["planned_steps"] / 2)


def test_recog_makes_waiting_openmp_threads_sleep_unless_told_otherwise():
    """OMP_WAIT_POLICY=PASSIVE when recog is imported before torch (bench/shared_cores.py: 2.0x
    the images/s beside a busy core, the same alone); a value the user set is kept."""
    import os
    import subprocess
    import sys

    show = "import os, recog, torch; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = lambda code, **extra: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True
    ).stdout.strip()
    assert run(show) == "PASSIVE"
    assert run(show, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    assert run("import os, torch, recog; print(os.environ.get('OMP_WAIT_POLICY'))") == "None"


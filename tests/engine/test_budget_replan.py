"""The time cap is a clock the trainer re-plans against each epoch, not an epoch count fixed by the
probe: a probe taken while the machine was busy plans few epochs, the run re-plans upward from its
measured epochs, and the cut is said at the start, at the end and in metrics.json.  The default
suite simulates the busy probe (one that reports slow steps); the slow test runs the real probe
and first epochs beside four busy processes that stop 10 s in."""

from __future__ import annotations

import json

import pytest

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


@pytest.mark.slow
def test_the_plan_grows_when_a_load_present_at_the_start_ends(tmp_path, monkeypatch, capsys):
    """Four busy processes hold the cores through the probe and the first seconds of training,
    then stop: the epochs' own plan (the `k/N` of the epoch table) grows once they are gone."""
    import re
    import subprocess
    import sys
    import threading
    import time

    import recog.engine.probe as probe_module

    real_probe = probe_module.probe

    def loaded_probe(*args, **kwargs):
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]

        def stop() -> None:
            for hog in hogs:
                hog.kill()
                hog.wait()

        time.sleep(0.5)
        threading.Timer(10.0, stop).start()  # the load lasts into the first epochs, then ends
        return real_probe(*args, **kwargs)

    monkeypatch.setattr(probe_module, "probe", loaded_probe)
    monkeypatch.setattr(recipe, "DEFAULT_TIME_CAP", 40)
    rec = recog.train("digits", "cnn", model_args={"width": 8}, out=str(tmp_path / "run"))
    err = capsys.readouterr().err
    assert rec.config.time == 40, "the loaded probe fitted the whole plan: nothing to re-plan"
    # the first epoch shows the plan's bound (nothing measured yet); from the second on, the plan
    # is re-made from measured epochs: small while loaded, larger once the load has gone
    plans = [int(n) for n in re.findall(r"^ *\d+/(\d+) ", err, flags=re.M)][1:]
    assert len(plans) > 2 and max(plans) > plans[0], plans
    fits = int(re.search(r"about (\d+) of the \d+ planned epochs", err).group(1))
    cut = "  warning    the 0-minute cap fits about" in err
    assert cut == (fits < rec.config.epochs / 2)


def test_steps_train_that_many_steps_not_the_epochs_they_round_up_to(tmp_path):
    """`--steps 5` on 45 steps an epoch: 5 optimizer steps, recorded as given, and the
    schedule ends at the fifth (it once trained the whole epoch, config.yaml saying 5)."""
    rec = recog.train("digits", "cnn", model_args={"width": 8}, steps=5, out=str(tmp_path / "r"))
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert (rec.config.steps, rec.config.epochs) == (5, 1)
    assert metrics["fitted_steps"] == 5 == metrics["planned_steps"]

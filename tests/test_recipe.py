"""The recipe: what a left-out option becomes, from facts about the data (recog.recipe)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from recog.api import resolve_config
from recog.config import TrainRequest, parse_duration
from recog.errors import RecogError
from recog.recipe import DEFAULT_TIME_CAP, Probe, resolve, resolve_budget, start_block
from recog.tasks import ClassifyTask, DetectTask, SegmentTask
from recog.types import DataFacts, TaskName


def _facts(n_train: int, *, side: int = 375, classes: int = 2, task=TaskName.CLASSIFY) -> DataFacts:
    names = tuple(f"c{i}" for i in range(classes))
    return DataFacts(task, "x", n_train, max(1, n_train // 4), names, side, int(side * 1.3))


class _Defaults:
    img_size = None
    hflip = None
    crop_pct = 0.875
    min_scale = None


def _resolve(
    cfg: TrainRequest,
    facts: DataFacts,
    task=ClassifyTask,
    probe: Probe | None = None,
    *,
    scratch: bool = True,
):
    """The resolved config; `scratch` (the rules these tests pin) unless weights are given:
    the pretrained start has tests of its own (test_pretrained_start_*)."""
    if scratch and cfg.weights is None:
        cfg = cfg.replace(weights="none")
    res = resolve(cfg, facts, task.recipe, device_type="cpu", data_defaults=_Defaults())
    return resolve_budget(res, facts, probe=probe)


def test_no_flag_resolution_leaves_no_field_unset():
    res = _resolve(TrainRequest(data="somewhere"), _facts(245))
    cfg = dataclasses.replace(res.config, out="runs/x", name="x")
    assert all(v is not None for v in cfg.to_dict().values())
    assert cfg.versions["torch"] == str(torch.__version__)


def test_small_sets_get_more_epochs_and_the_budget_is_counted_in_steps():
    small = _resolve(TrainRequest(), _facts(40)).config
    big = _resolve(TrainRequest(), _facts(20_000)).config
    assert small.epochs > 50 > big.epochs
    # the step budget grows with the data, but far slower than the data
    assert small.steps < big.steps < small.steps * math.sqrt(20_000 / 40) * 1.1
    # and it is the one the engine will run: epochs x steps per epoch
    assert small.steps == small.epochs * math.ceil(40 / small.batch_size)


def test_batch_follows_the_data_and_the_learning_rate_follows_the_batch():
    tiny = _resolve(TrainRequest(), _facts(40)).config
    mid = _resolve(TrainRequest(), _facts(245)).config
    big = _resolve(TrainRequest(), _facts(5000)).config
    assert (tiny.batch_size, mid.batch_size, big.batch_size) == (8, 16, 32)
    # square-root scaling from 2e-3 at batch 32
    assert big.lr == pytest.approx(2e-3)
    assert mid.lr == pytest.approx(2e-3 * math.sqrt(0.5), rel=1e-2)
    assert tiny.lr == pytest.approx(1e-3, rel=1e-2)


def test_given_values_are_used_never_replaced():
    cfg = TrainRequest(
        model="resnet18", img_size=96, epochs=7, batch_size=4, lr=0.1, weight_decay=0.0,
        schedule="constant", label_smoothing=0.0, augment="none", patience=0, ema=0.0,
    )  # fmt: skip
    out = _resolve(cfg, _facts(245)).config
    for key in ("model", "img_size", "epochs", "batch_size", "lr", "weight_decay", "schedule",
                "label_smoothing", "augment", "patience", "ema"):  # fmt: skip
        assert getattr(out, key) == getattr(cfg, key), key
    assert out.steps == 7 * math.ceil(245 / 4)


def test_steps_set_the_epochs_and_a_disagreeing_pair_is_refused():
    out = _resolve(TrainRequest(steps=100, batch_size=16), _facts(160)).config
    assert (out.epochs, out.steps) == (10, 100)
    with pytest.raises(RecogError, match="disagree"):
        _resolve(TrainRequest(steps=100, epochs=3, batch_size=16), _facts(160))


def test_input_size_and_model_come_from_the_images():
    photos = _resolve(TrainRequest(), _facts(245, side=375)).config
    assert (photos.model, photos.img_size) == ("resnet18", 128)  # capped on CPU
    small = _resolve(TrainRequest(), _facts(245, side=100)).config
    assert (small.model, small.img_size) == ("resnet18", 96)
    tiny = _resolve(TrainRequest(), _facts(500, side=28)).config
    assert (tiny.model, tiny.img_size) == ("cnn", 32)
    # detection letterboxes the longer side; segmentation crops at most 256 on CPU
    det = _resolve(TrainRequest(), _facts(160, side=400, task=TaskName.DETECT), DetectTask).config
    assert (det.model, det.img_size, det.batch_size) == ("yolo_n", 320, 16)
    assert det.ema >= 0.99 and det.mosaic == 1.0
    seg = _resolve(TrainRequest(), _facts(24, side=512, task=TaskName.SEGMENT), SegmentTask).config
    assert (seg.model, seg.img_size, seg.batch_size, seg.augment) == ("unet", 256, 8, "strong")


def test_detection_given_epochs_takes_a_batch_that_reaches_the_planned_steps():
    """raccoon's 160 images: 760 steps planned; 60 epochs of batch 16 are 600, of 8 are 1,200
    (mAP 0.347 against 0.392, docs/recipe.md); enough epochs keep the batch rule's 16."""
    facts = _facts(160, side=400, task=TaskName.DETECT)
    short = _resolve(TrainRequest(epochs=60), facts, DetectTask)
    assert (short.config.batch_size, short.config.steps) == (8, 1200)
    assert any("reach the 759 steps planned" in n for n in short.notes)
    long = _resolve(TrainRequest(epochs=76), facts, DetectTask).config
    assert (long.batch_size, long.steps) == (16, 760)
    # never below the task's smallest batch, never over a batch the user gave
    assert _resolve(TrainRequest(epochs=2), facts, DetectTask).config.batch_size == 8
    given = _resolve(TrainRequest(epochs=60, batch_size=16), facts, DetectTask).config
    assert given.batch_size == 16
    # classification keeps its batch rule (not measured there)
    assert _resolve(TrainRequest(epochs=30), _facts(245)).config.batch_size == 16


def test_the_time_cap_bounds_a_planned_budget_that_would_not_fit_by_the_clock():
    slow = Probe(step_seconds=2.0, val_seconds=5.0)  # 16 steps an epoch: 37 s an epoch
    free = _resolve(TrainRequest(), _facts(245)).config
    capped = _resolve(TrainRequest(), _facts(245), probe=slow)
    # the plan stays the bound; the cap is a clock the trainer re-plans against each epoch
    assert capped.config.epochs == free.epochs and capped.config.time == DEFAULT_TIME_CAP
    fits = DEFAULT_TIME_CAP // 37
    assert any(f"about {fits} of the {free.epochs} planned epochs" in n for n in capped.notes)
    assert capped.config.patience > 0  # a planned run keeps its early stop under the cap
    # cut by more than half: the warning the start block and the summary give
    assert (
        f"fits about {fits * 16:,} of the {free.epochs * 16:,} planned steps" in capped.budget_cut
    )
    assert "--time" in capped.budget_cut and f"--epochs {free.epochs}" in capped.budget_cut
    lines = start_block(_facts(245), capped, "runs/x", device="cpu")
    assert any(line.startswith("  warning    the 15-minute cap") for line in lines)
    # a budget the user gave is never capped, nor warned about
    given = _resolve(TrainRequest(epochs=500), _facts(245), probe=slow)
    assert (given.config.epochs, given.config.time, given.budget_cut) == (500, 0.0, "")
    # a cut of less than half is said as a note, not a warning
    mild = _resolve(TrainRequest(), _facts(245), probe=Probe(step_seconds=0.9, val_seconds=1.0))
    assert mild.config.time == DEFAULT_TIME_CAP and mild.budget_cut == ""


def test_what_follows_the_run_length_follows_the_capped_budget():
    slow = Probe(step_seconds=2.0, val_seconds=5.0)  # 10 steps an epoch: 25 s an epoch
    facts = _facts(160, side=400, task=TaskName.DETECT)
    free = _resolve(TrainRequest(), facts, DetectTask).config
    capped = _resolve(TrainRequest(), facts, DetectTask, probe=slow).config
    fits = DEFAULT_TIME_CAP // 25
    assert capped.epochs == free.epochs > fits
    assert capped.mosaic_off_epochs == round(fits / 6) < free.mosaic_off_epochs
    assert capped.ema <= free.ema
    # a value the user gave stays as given
    kept = _resolve(TrainRequest(mosaic_off_epochs=20), facts, DetectTask, probe=slow).config
    assert kept.mosaic_off_epochs == 20


def test_time_budget_sets_a_bound_and_the_clock_schedule():
    probe = Probe(step_seconds=0.5, val_seconds=2.0)  # 10 s an epoch
    out = _resolve(TrainRequest(time=300.0), _facts(245), probe=probe).config
    assert out.time == 300.0
    assert out.epochs >= 60  # an upper bound: the clock stops the run
    assert out.patience == 0  # the clock ends the run, once the rate has annealed


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1.5h", 5400), ("1h30m", 5400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0", "10x"])
def test_bad_durations_are_refused(text):
    with pytest.raises(RecogError, match="--time"):
        parse_duration(text)


@pytest.mark.parametrize("key", ["epochs", "batch_size", "img_size", "steps"])
def test_zero_is_refused_not_replaced(key, tmp_path):
    with pytest.raises(RecogError, match="at least 1"):
        resolve_config(TrainRequest(data="digits", **{key: 0}))


def test_survey_measures_the_real_data(tiny_folder):
    res, facts, task = resolve_config(TrainRequest(data=str(tiny_folder)))
    assert task is ClassifyTask
    assert (facts.n_train, facts.n_val, facts.num_classes) == (24, 8, 2)
    assert (facts.median_side, facts.median_long_side) == (40, 48)
    assert res.config.classes == ["a", "b"]
    assert res.config.model == "cnn" and res.config.img_size == 32


def test_ema_decay_ramps_up_from_the_first_update():
    from recog.engine.optim import build_ema

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = build_ema(model, 0.999)
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update_parameters(model)  # n = 1: decay (1 + 1) / (10 + 1)
    assert float(ema.module.weight.detach()) == pytest.approx(1 - 2 / 11)


@pytest.fixture
def tiny_folder(tmp_path):
    """2 classes of 16 images, 48 x 40 px, each class its own colour: learnable in seconds."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("val", 4)):
        for name, colour in (("a", (200, 40, 40)), ("b", (40, 40, 200))):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(colour, 40, (40, 48, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return tmp_path / "data"


# 20-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_no_flag_run_records_every_value_and_reruns_from_its_config(tiny_folder, tmp_path):
    """The whole contract on a real (tiny) run: no-flag config concrete, start and end blocks,
    and `--config RUN/config.yaml --out NEW --deterministic` repeats the metrics."""
    from helpers import run_cli

    first = tmp_path / "first"
    proc = run_cli("train", "--data", str(tiny_folder), "--deterministic", "--steps", "60",
                   "--out", str(first))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "recipe" in proc.stderr and "why" in proc.stderr
    assert "best epoch" in proc.stdout and f"recog predict {first}" in proc.stdout
    values = yaml.safe_load((first / "config.yaml").read_text())
    assert [k for k, v in values.items() if v is None] == []
    second = tmp_path / "second"
    proc = run_cli("train", "--config", str(first / "config.yaml"), "--out", str(second))
    assert proc.returncode == 0, proc.stderr
    a = json.loads((first / "metrics.json").read_text())
    b = json.loads((second / "metrics.json").read_text())
    assert a["top1"] == b["top1"] and a["ece"] == pytest.approx(b["ece"], abs=1e-9)
    again = yaml.safe_load((second / "config.yaml").read_text())
    assert {k: v for k, v in again.items() if k not in ("out", "name")} == {
        k: v for k, v in values.items() if k not in ("out", "name")
    }
    # the old run directory is never written over
    proc = run_cli("train", "--config", str(first / "config.yaml"), "--out", str(first))
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    assert "Traceback" not in proc.stderr


# 20-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_time_budget_stops_on_time_with_an_annealed_rate(tiny_folder, tmp_path):
    from helpers import run_cli

    out = tmp_path / "timed"
    proc = run_cli("train", "--data", str(tiny_folder), "--time", "12s", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert 12 * 0.75 <= metrics["train_seconds"] <= 12 * 1.3
    rows = (out / "results.csv").read_text().splitlines()
    header = rows[0].split(",")
    lrs = [float(r.split(",")[header.index("lr")]) for r in rows[1:]]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["time"] == 12.0
    assert lrs[-1] < 0.2 * cfg["lr"]  # annealed towards the end of the time, not cut mid-way


def test_amp_auto_on_a_cpu_follows_the_probes_timing():
    """bf16 where the probe measured it faster by the margin, float32 otherwise; the epoch
    estimate (and so the time cap) uses the chosen precision's steps."""
    facts = _facts(245)
    fast = _resolve(TrainRequest(), facts, probe=Probe(2.0, 5.0, bf16_step_seconds=1.0))
    assert fast.config.amp == "on" and any("amp on: bf16 steps 1.00 s" in n for n in fast.notes)
    # 16 steps an epoch: 21 s an epoch in bf16 against 37 s, so more epochs fit the cap
    assert any(f"about {DEFAULT_TIME_CAP // 21} of the" in n for n in fast.notes)
    marginal = _resolve(TrainRequest(), facts, probe=Probe(2.0, 5.0, bf16_step_seconds=1.9))
    assert marginal.config.amp == "off" and any("no faster" in n for n in marginal.notes)
    none = _resolve(TrainRequest(), facts, probe=Probe(2.0, 5.0))
    assert none.config.amp == "off" and any("no native bf16" in n for n in none.notes)
    # a value the user gave is used as given, with no probe consulted
    for given in ("on", "off"):
        cfg = _resolve(TrainRequest(amp=given), facts, probe=Probe(2.0, 5.0, 1.0)).config
        assert cfg.amp == given
    # no field is left unset, even without a probe (amp off, float32)
    assert _resolve(TrainRequest(), facts).config.amp == "off"

"""The engine really learns, checkpoints atomically, and resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run_cli

import recog
from recog.engine.logging import ResultsTable

FAST = dict(data="digits", model="cnn", batch_size=64, model_args={"width": 16, "depth": 3})


def test_cnn_learns_digits_and_writes_a_complete_run(tmp_path):
    rec = recog.train(**FAST, epochs=3, out=str(tmp_path / "run"))
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "labels.json",
        "model.safetensors",
        "last.ckpt",
        "results.csv",
        "metrics.json",
        "report.html",
    ):
        assert (run / name).is_file(), name
    for plot in (
        "curves.png",
        "confusion_matrix.png",
        "samples.png",
        "labels.png",
        "train_batch.png",
    ):
        assert (run / "plots" / plot).is_file(), plot
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["top1"] > 0.85  # chance is 0.10
    assert set(metrics) >= {"top1", "top5", "macro_f1", "ece", "per_class", "train_seconds"}
    assert len(ResultsTable.read(run / "results.csv")) == 3
    assert not list(run.glob(".*.tmp")), "no temporary files left behind"

    # load() rebuilds from the directory alone and agrees with the in-memory model
    again = recog.load(run)
    scores = again.evaluate()
    assert scores["top1"] == pytest.approx(metrics["top1"], abs=1e-9)
    assert rec.class_names == again.class_names == [str(i) for i in range(10)]


def test_mixed_precision_training_reports_its_best_epoch_in_full_precision(tmp_path):
    """With --amp on (bf16 on CPUs that have it), each epoch is still validated in float32,
    as the final evaluation is: the best row of results.csv is the run's metrics.json."""
    recog.train(**FAST, epochs=2, amp="on", out=str(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    rows = ResultsTable.read(tmp_path / "run" / "results.csv")
    best = rows[metrics["best_epoch"] - 1]
    assert float(best["top1"]) == pytest.approx(metrics["top1"], abs=1e-6)


def test_amp_auto_is_settled_by_the_probe_and_recorded(tmp_path, capfd):
    """`--amp auto` on a CPU: the run's config.yaml holds the precision the probe chose
    (never `auto`), and the start block says why; without native bf16 it is float32."""
    import torch
    import yaml

    recog.train(**FAST, epochs=1, img_size=16, out=str(tmp_path / "run"))
    used = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["amp"]
    said = capfd.readouterr().err
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert used == "off" and "amp off: this CPU has no native bf16" in said
    else:
        assert used in ("on", "off") and f"amp {used}: bf16 steps" in said, said


def test_early_stopping_and_ema(tmp_path):
    # lr 0 cannot improve after the first epoch, so patience 1 stops at epoch 2
    recog.train(
        **FAST, epochs=5, lr=0.0, warmup_epochs=0, patience=1, ema=0.99, out=str(tmp_path / "run")
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] == 1


def test_every_engine_option_trains(tmp_path):
    """SGD + one-cycle + accumulation + clipping + label smoothing + mixup/cutmix + balanced sampling."""
    recog.train(
        **FAST,
        epochs=2,
        optimizer="sgd",
        schedule="onecycle",
        accumulate=2,
        clip_grad=1.0,
        label_smoothing=0.1,
        mixup=0.2,
        cutmix=1.0,
        balanced=True,
        auto_augment="trivialaugment",
        amp="off",
        out=str(tmp_path / "run"),
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["top1"] > 0.25  # chance is 0.10; heavy regularization learns slowly


def _train_args(out: Path) -> list[str]:
    return [
        "train",
        "--data",
        "digits",
        "--model",
        "cnn",
        "--model-args",
        "width=16",
        "--epochs",
        "4",
        "--batch-size",
        "16",
        "--deterministic",
        "--seed",
        "3",
        "--augment",
        "light",
        "--out",
        str(out),
    ]


@pytest.mark.slow  # 65 s; the default suite keeps the kill while writing a checkpoint
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    env = {"OMP_NUM_THREADS": "1"}
    full = run_cli(*_train_args(tmp_path / "full"), env=env)
    assert full.returncode == 0, full.stderr

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "recog", *_train_args(killed)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(ResultsTable.read(killed / "results.csv")) < 2:
        time.sleep(0.05)
    time.sleep(0.3)  # well into epoch 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(ResultsTable.read(killed / "results.csv"))
    assert 2 <= done < 4, f"kill should land mid-run, {done} epochs were done"
    assert not (killed / "metrics.json").exists()

    resumed = run_cli("train", "--resume", str(killed), env=env)
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    for key in ("top1", "top5", "macro_f1", "ece", "nll"):
        assert a[key] == b[key], key
    rows_a = ResultsTable.read(tmp_path / "full" / "results.csv")
    rows_b = ResultsTable.read(killed / "results.csv")
    assert [r["train_loss"] for r in rows_a] == [r["train_loss"] for r in rows_b]


# 20-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_torchrun_two_processes_train_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        "-m",
        "recog",
        "train",
        "--data",
        "digits",
        "--model",
        "cnn",
        "--model-args",
        "width=16",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["top1"] > 0.7
    from recog.data import load_classification

    expected = len(load_classification("digits", img_size=32, cache="off").val)
    assert metrics["num_samples"] == expected  # every val image counted once across the two ranks
    rows = ResultsTable.read(out / "results.csv")
    assert len(rows) == 2
    # one epoch table (its header, then a row per epoch) from rank 0 only
    lines = (proc.stderr + proc.stdout).splitlines()
    assert sum(line.split()[:2] == ["epoch", "train_loss"] for line in lines) == 1
    assert sum(line.split()[:1] == ["1/2"] for line in lines) == 1


# ------------------------------------------------------------ SIGKILL at random points
RANDOM_KILL_ARGS = [
    "--data",
    "digits",
    "--model",
    "cnn",
    "--model-args",
    "width=8",
    "--img-size",
    "16",
    "--epochs",
    "3",
    "--batch-size",
    "32",
    "--deterministic",
    "--seed",
    "3",
    "--augment",
    "light",
]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> tuple[Path, float]:
    """The uninterrupted deterministic run, and how long it took from config.yaml to metrics.json."""
    out = tmp_path_factory.mktemp("reference") / "run"
    done = run_cli("train", *RANDOM_KILL_ARGS, "--out", str(out), env={"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    window = (out / "metrics.json").stat().st_mtime - (out / "config.yaml").stat().st_mtime
    return out, window


def _kill_at_random_points_then_resume(reference, tmp_path: Path, tries: int) -> list[int]:
    """Kill a copy of the reference run `tries` times at seeded random moments, resume each;
    every resumed run ends as the reference did.  Returns the epochs each kill left done."""
    import random

    ref, window = reference
    rng = random.Random(11)
    env = {"OMP_NUM_THREADS": "1"}
    expected = json.loads((ref / "metrics.json").read_text())
    expected_rows = ResultsTable.read(ref / "results.csv")
    done_at_kill = []
    for attempt in range(tries):
        run = tmp_path / f"try{attempt}"
        delay = rng.uniform(0.0, window * 1.1)
        proc = subprocess.Popen(
            [sys.executable, "-m", "recog", "train", *RANDOM_KILL_ARGS, "--out", str(run)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 300
            while not (run / "config.yaml").exists() and proc.poll() is None:
                assert time.time() < deadline, "the run never started"
                time.sleep(0.02)
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        done_at_kill.append(len(ResultsTable.read(run / "results.csv")))
        resumed = run_cli("train", "--resume", str(run), env=env)
        assert resumed.returncode == 0, (attempt, delay, resumed.stderr[-2000:])
        got = json.loads((run / "metrics.json").read_text())
        for key in ("top1", "top5", "macro_f1", "ece", "nll", "best_epoch", "epochs_run"):
            assert got[key] == expected[key], (attempt, delay, key)
        rows = ResultsTable.read(run / "results.csv")
        assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in expected_rows]
        assert not list(run.glob(".*.tmp")), (attempt, "temporary files left behind")
    return done_at_kill


# slow: ~90 s on 2 cores, and the default suite keeps the single mid-epoch kill above
@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_matches_the_uninterrupted_run(
    reference_run, tmp_path
):
    _kill_at_random_points_then_resume(reference_run, tmp_path, tries=2)


@pytest.mark.slow
def test_sigkill_at_ten_random_points_then_resume_matches_the_uninterrupted_run(
    reference_run, tmp_path
):
    done = _kill_at_random_points_then_resume(reference_run, tmp_path, tries=10)
    assert len(set(done)) > 1, f"the kills should land at different epochs: {done}"

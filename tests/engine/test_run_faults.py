"""Faults a run survives: reused and odd run directories, a foreign checkpoint, a diverging
loss, a full disk, a process killed in the middle of writing its checkpoint.

Each case is one line on stderr (`recog: error: ...`, exit 2) and nothing the run had is lost.
The runs are tiny (digits at 16 px, a width-8 CNN, one epoch) and trained in this process,
except where a process has to be killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from recog import api, cli
from recog import io as rio
from recog.api.runs import _run_dir
from recog.config import TrainConfig, TrainRequest
from recog.engine.logging import ResultsTable

TINY = [
    "--data",
    "digits",
    "--model",
    "cnn",
    "--model-args",
    "width=8",
    "--img-size",
    "16",
    "--batch-size",
    "64",
    "--seed",
    "1",
]


def _train(capsys, *args: str) -> tuple[int, str]:
    """`recog ARGS` in this process: (exit status, stderr)."""
    capsys.readouterr()
    code = cli.main(list(args))
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    """The one error line (after the run's start block, if it got that far)."""
    assert "Traceback" not in err, err
    said = [line for line in err.splitlines() if line.startswith("recog:")]
    assert len(said) == 1 and err.endswith(said[0] + "\n"), err
    assert said[0].startswith("recog: error: "), err
    return said[0]


def _temps(run: Path) -> list[Path]:
    return sorted(run.glob(".*.tmp"))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: on 2 shared, busy cores it trains these tiny runs ~5x faster than 2."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One epoch of a width-8 CNN on 16-px digits, trained once for this module."""
    run = tmp_path_factory.mktemp("faults") / "run"
    assert cli.main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    return run


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    return run


def _epoch_of(run: Path) -> int:
    return int(rio.load_checkpoint(run / "last.ckpt")["state"]["epoch"])


# ------------------------------------------------------------ run directories
def test_out_of_an_existing_run_is_refused_and_exist_ok_replaces_it_cleanly(run_copy, capsys):
    (run_copy / "plots" / "old-only.png").write_bytes(b"old")
    (run_copy / "val").mkdir()
    (run_copy / "val" / "report.html").write_text("old val")
    stale = run_copy / ".last.ckpt.0badc0de.tmp"
    stale.write_bytes(b"half a checkpoint")
    before = (run_copy / "model.safetensors").read_bytes()

    code, err = _train(capsys, "train", *TINY, "--epochs", "2", "--out", str(run_copy))
    assert code == 2
    assert "already holds a run" in _one_line(err) and "--exist-ok" in err
    assert (run_copy / "model.safetensors").read_bytes() == before, "refused means untouched"

    code, err = _train(
        capsys, "train", *TINY, "--epochs", "2", "--seed", "2", "--out", str(run_copy), "--exist-ok"
    )
    assert code == 0, err
    assert not (run_copy / "plots" / "old-only.png").exists()
    assert not (run_copy / "val").exists()
    assert not stale.exists() and not _temps(run_copy)
    assert len(ResultsTable.read(run_copy / "results.csv")) == 2
    assert json.loads((run_copy / "metrics.json").read_text())["epochs_run"] == 2
    assert TrainConfig.load(run_copy / "config.yaml").seed == 2


def test_out_naming_a_file_is_one_line_before_any_training(tmp_path, capsys, monkeypatch):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    monkeypatch.setattr(api.training, "_train", lambda *a, **k: pytest.fail("must not train"))
    code, err = _train(capsys, "train", *TINY, "--epochs", "1", "--out", str(target))
    assert code == 2
    assert f"{target}: --out names a file" in _one_line(err)
    assert target.read_text() == "mine"


def test_default_run_name_takes_a_new_numbered_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TrainRequest(task="classify", model="cnn")
    first = _run_dir(cfg, "digits")
    assert first == Path("runs/classify/digits-cnn")
    first.mkdir(parents=True)
    (first / "config.yaml").write_text("{}")
    second = _run_dir(cfg, "digits")
    assert second == Path("runs/classify/digits-cnn-2")
    second.mkdir()
    assert _run_dir(cfg, "digits") == Path("runs/classify/digits-cnn-3")
    assert _run_dir(cfg, "digits", exist_ok=True) == Path("runs/classify/digits-cnn-3")


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_over(run_copy, capsys):
    for name in ("last.ckpt", "model.safetensors", "metrics.json", "report.html"):
        (run_copy / name).unlink()
    (run_copy / ".model.safetensors.12345678.tmp").write_bytes(b"x")
    code, err = _train(capsys, "train", "--resume", str(run_copy))
    assert code == 0, err
    assert _epoch_of(run_copy) == 1 and not _temps(run_copy)
    assert len(ResultsTable.read(run_copy / "results.csv")) == 1


# ------------------------------------------------------------ foreign checkpoints
def test_resume_from_a_checkpoint_that_does_not_fit_is_one_line_naming_the_file(run_copy, capsys):
    from recog.models.factory import create_model

    wider = rio.load_checkpoint(run_copy / "last.ckpt")
    wider["model"] = create_model("cnn", num_classes=10, img_size=16, width=12).state_dict()
    cases = {
        "not a checkpoint of this run's cnn ('features.0.0.0.weight' has shape": wider,
        "not a recog training checkpoint (a Tensor)": torch.zeros(3),
        "not a recog training checkpoint (no 'optimizer'": {"model": {}, "state": {}},
    }
    for expected, saved in cases.items():
        rio.save_checkpoint(run_copy / "last.ckpt", saved)  # type: ignore[arg-type]
        code, err = _train(capsys, "train", "--resume", str(run_copy))
        assert code == 2, (expected, err)
        assert f"{run_copy / 'last.ckpt'}: {expected}" in _one_line(err), err


# ------------------------------------------------------------ a diverging loss
def test_a_loss_that_becomes_nan_stops_with_epoch_and_step_and_keeps_the_checkpoint(
    tmp_path, capsys, monkeypatch
):
    import math

    from recog.data import load_classification
    from recog.tasks.classify import ClassifyTask

    steps = math.ceil(len(load_classification("digits", img_size=16, cache="off").train) / 64)
    real_loss = ClassifyTask.loss
    calls = {"n": 0}

    def loss(self, model, batch):
        parts = real_loss(self, model, batch)
        calls["n"] += 1
        if calls["n"] == steps + 6:  # epoch 2, step 6
            parts = {**parts, "loss": parts["loss"] * float("nan")}
        return parts

    monkeypatch.setattr(ClassifyTask, "loss", loss)
    run = tmp_path / "run"
    # --amp off: no timing probe, whose steps would also call the counted loss
    code, err = _train(capsys, "train", *TINY, "--epochs", "3", "--amp", "off", "--out", str(run))
    assert code == 2
    line = _one_line(err)
    assert "training diverged at epoch 2, step 6: the loss is nan" in line, line
    assert f"{run / 'last.ckpt'} keeps epoch 1" in line, line
    assert _epoch_of(run) == 1 and not _temps(run)
    assert len(ResultsTable.read(run / "results.csv")) == 1
    rio.load_weights(run / "model.safetensors")  # the best epoch's weights are intact


# ------------------------------------------------------------ a full disk
@contextlib.contextmanager
def _tmpfs(where: Path, size: str):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a disk that fills up) needs root")
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """A file that takes all of `disk`'s free space but `leave` bytes."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_is_one_line_and_the_last_checkpoint_still_loads(tiny_run, tmp_path, capsys):
    with _tmpfs(tmp_path / "disk", "4m") as disk:
        run = disk / "run"
        shutil.copytree(tiny_run, run)
        filler = _fill(disk, leave=64 * 1024)  # config, labels, results fit; the weights do not
        code, err = _train(capsys, "train", "--resume", str(run), "--epochs", "2")
        assert code == 2
        line = _one_line(err)
        assert line.rstrip().endswith(": No space left on device"), line
        assert str(run) in line, line
        assert _epoch_of(run) == 1, "the last good checkpoint is untouched"
        assert not _temps(run), "a failed write leaves no temporary file"
        api.load(run)

        filler.unlink()  # space again: the same run continues where it was
        code, err = _train(capsys, "train", "--resume", str(run), "--epochs", "2")
        assert code == 0, err
        assert _epoch_of(run) == 2


# ------------------------------------------------------------ killed mid-write
_SLOW_WRITER = """
import sys, time
from pathlib import Path
from recog import io as rio

path, marker = Path(sys.argv[1]), Path(sys.argv[2])
data = path.read_bytes()

def slow(tmp):
    with open(tmp, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        marker.touch()
        time.sleep(120)
        fh.write(data[len(data) // 2 :])

rio.atomic_write(path, slow)
"""


# 20-60 s on 2 cores: in `make test-all`, to keep `make test` under 15 minutes
@pytest.mark.slow
def test_sigkill_while_writing_the_checkpoint_keeps_the_previous_one(run_copy, tmp_path, capsys):
    ckpt = run_copy / "last.ckpt"
    before = ckpt.read_bytes()
    marker = tmp_path / "half-written"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(ckpt), str(marker)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the writer exited early"
            assert time.monotonic() < deadline, "the writer never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert ckpt.read_bytes() == before, "the checkpoint is the previous one"
    assert len(_temps(run_copy)) == 1, "the killed write left its temporary file"
    assert _epoch_of(run_copy) == 1

    code, err = _train(capsys, "train", "--resume", str(run_copy), "--epochs", "2")
    assert code == 0, err
    assert not _temps(run_copy), "the next start removed it"
    assert _epoch_of(run_copy) == 2


def test_resume_of_a_run_with_weights_but_no_checkpoint_is_refused_not_retrained(run_copy, capsys):
    """Issue 33: `--resume` of a run without last.ckpt retrained it from scratch and replaced
    its model.safetensors."""
    (run_copy / "last.ckpt").unlink()
    before = (run_copy / "model.safetensors").read_bytes()
    code, err = _train(capsys, "train", "--resume", str(run_copy))
    assert code != 0 and "no last.ckpt to resume from" in err
    assert (run_copy / "model.safetensors").read_bytes() == before

"""`--log tensorboard,mlflow`: a digits run leaves TensorBoard scalars per epoch and one MLflow
run (params, per-epoch metrics, the run's files) in the local store beside it."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys

import pytest
import yaml

from recog.cli import main
from recog.engine.tracking import flat_params, tracking_uri


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("tracked")
    run = runs / "digits-cnn"
    code = main(
        ["train", "--data", "digits", "--model", "cnn", "--epochs", "2", "--batch-size", "64",
         "--log", "tensorboard,mlflow", "--out", str(run)]
    )  # fmt: skip
    assert code == 0
    with (run / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return run, rows


def test_tensorboard_has_each_epochs_scalars(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, rows = tracked_run
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    top1 = events.Scalars("top1")
    assert [e.step for e in top1] == [1, 2]
    assert [e.value for e in top1] == pytest.approx([float(r["top1"]) for r in rows], abs=1e-5)
    assert len(events.Scalars("train_loss")) == 2
    assert events.Scalars("final/top1")[0].value == pytest.approx(float(rows[-1]["top1"]), abs=1e-5)


def test_mlflow_holds_one_run_with_params_metrics_and_files(tracked_run):
    from mlflow.tracking import MlflowClient

    run, rows = tracked_run
    config = yaml.safe_load((run / "config.yaml").read_text())
    # the local default: a SQLite store beside the run directory, recorded resolved
    assert config["log"] == "tensorboard,mlflow"
    assert config["log_uri"] == f"sqlite:///{run.parent.resolve() / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=config["log_uri"])
    experiment = client.get_experiment_by_name("recog-classify")
    found = client.search_runs([experiment.experiment_id])
    assert len(found) == 1
    logged = found[0]
    assert logged.info.status == "FINISHED" and logged.info.run_name == "digits-cnn"
    assert logged.data.params["model"] == "cnn" and logged.data.params["epochs"] == "2"
    assert logged.data.params["batch_size"] == "64"
    history = client.get_metric_history(logged.info.run_id, "top1")
    assert sorted(m.step for m in history) == [1, 2]
    assert sorted(m.value for m in history) == pytest.approx(
        sorted(float(r["top1"]) for r in rows), abs=1e-5
    )
    files = {f.path for f in client.list_artifacts(logged.info.run_id)}
    assert {"report.html", "config.yaml", "results.csv", "model.safetensors", "plots"} <= files
    assert (run.parent / "mlartifacts").is_dir()  # artifacts beside the store, not in the cwd


def test_a_missing_package_is_one_line_before_training(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    code = main(["train", "--data", "digits", "--model", "cnn", "--epochs", "1",
                 "--log", "mlflow", "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["recog: error: --log mlflow: the mlflow package is not installed "
                   "(pip install 'recog[mlflow]')"]  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_log_uri_needs_mlflow_and_the_environment_chooses_the_store(tmp_path, monkeypatch, capsys):
    code = main(["train", "--data", "digits", "--log-uri", "sqlite:///x.db",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 2
    assert "--log-uri sqlite:///x.db: only with --log mlflow" in capsys.readouterr().err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking_uri("mlflow", "auto", tmp_path / "r") == "http://tracking.example:5000"
    assert tracking_uri("mlflow", "sqlite:///a.db", tmp_path / "r") == "sqlite:///a.db"
    assert tracking_uri("tensorboard", "auto", tmp_path / "r") == "none"


def test_params_are_flattened_and_the_engine_imports_no_tracker():
    assert flat_params({"model_args": {"width": 64}, "classes": ["a", "b"], "lr": 0.1}) == {
        "model_args.width": "64",
        "classes": "a,b",
        "lr": "0.1",
    }
    code = (
        "import sys, recog.engine.trainer, recog.engine.tracking, recog.api;"
        "print(sorted(m for m in ('mlflow', 'tensorboard') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

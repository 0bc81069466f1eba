"""A TrainRequest refuses a value of the wrong type or out of range, naming it (recog.config)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from recog.config import TrainRequest
from recog.errors import RecogError
from recog.types import TaskName


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lr": -1}, "lr must be at least 0"),
        ({"lr": 11}, "lr must be at least 0 and at most 10"),
        ({"batch_size": -1}, "batch_size must be at least 1"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"epochs": 2.5}, "epochs must be a whole number"),
        ({"epochs": "ten"}, "epochs must be a whole number"),
        ({"epochs": True}, "epochs must be a whole number"),
        ({"img_size": 10**9}, "img_size must be at least 1 and at most 4096"),
        ({"val_split": 1.0}, "val_split must be greater than 0 and less than 1"),
        ({"ema": 1.0}, "ema must be at least 0 and less than 1"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number"),
        ({"task": "recognize"}, "task must be one of classify, detect, segment"),
        ({"optimizer": "adam"}, "optimizer must be one of sgd, adamw"),
        ({"deterministic": "yes"}, "deterministic must be true or false"),
        ({"classes": "a,b"}, "classes must be a list of names"),
        ({"data": 3}, "data must be text"),
    ],
)
def test_bad_values_are_refused_with_their_name(values, message):
    with pytest.raises(RecogError, match=message) as info:
        TrainRequest.from_dict(values, source="run/config.yaml")
    assert str(info.value).startswith("run/config.yaml: ")


def test_good_values_are_used_as_given():
    cfg = TrainRequest.from_dict(
        {"lr": 1, "task": "detect", "hflip": 0, "weight_decay": "1e-4", "classes": ["a"]}
    )
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.task is TaskName.DETECT and cfg.to_dict()["task"] == "detect"
    assert cfg.hflip == 0.0 and cfg.weight_decay == 1e-4 and cfg.classes == ["a"]


def test_a_config_file_of_the_wrong_type_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data": "digits", "epochs": "many"}))
    proc = subprocess.run(
        [sys.executable, "-m", "recog", "train", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"recog: error: {path}: epochs must be a whole number, not 'many'"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["../../escaped", "/abs/path", "a/b", "..", ".", "", "a\\b"])
def test_a_run_name_is_a_name_not_a_path(name):
    """Issue 33: `--name ../../escaped_name` put the run outside runs/."""
    with pytest.raises(RecogError, match="name must be a plain folder name"):
        TrainRequest(name=name)


def test_empty_data_is_refused_not_the_current_folder():
    """Issue 33: `recog train --data ""` trained on the current directory."""
    with pytest.raises(RecogError, match="data must name a dataset"):
        TrainRequest(data="  ")

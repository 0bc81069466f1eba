"""`--teacher RUN` through the one engine: a distilled run records what it used, and a
teacher that cannot teach is refused in one line before anything is trained."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml
from PIL import Image

import recog
from recog.errors import RecogError


def _two_classes(root):
    """A class-folder set of two classes (not the digits' ten), 16 px images."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_a_distilled_classifier_trains_and_records_its_teacher(digits, tmp_path):
    run = recog.train("digits", "cnn", epochs=1, batch_size=64, teacher=str(digits.run_dir),
                      distill_weight=0.7, out=str(tmp_path / "kd"))  # fmt: skip
    cfg = yaml.safe_load((run.run_dir / "config.yaml").read_text())
    assert (cfg["teacher"], cfg["distill_weight"], cfg["distill_temperature"]) == (
        str(digits.run_dir),
        0.7,
        4.0,
    )
    with open(run.run_dir / "results.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert float(row["train_kd"]) >= 0 and float(row["train_task_loss"]) > 0
    blend = 0.3 * float(row["train_task_loss"]) + 0.7 * float(row["train_kd"])
    assert float(row["train_loss"]) == pytest.approx(blend, rel=1e-3)
    assert recog.load(run.run_dir).evaluate()["top1"] > 0.2


def test_a_teacher_of_other_classes_is_refused(digits, tmp_path):
    data = _two_classes(tmp_path / "ab")
    with pytest.raises(RecogError, match=r"labels\.json: the teacher's classes \[0, 1, 2"):
        recog.train(str(data), "cnn", epochs=1, img_size=16, teacher=str(digits.run_dir),
                    out=str(tmp_path / "r"))  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_a_teacher_of_another_task_is_refused(digits, tmp_path):
    with pytest.raises(RecogError, match=r"config\.yaml: the teacher is a classify run"):
        recog.train("shapes:8:4", "yolo_n", epochs=1, img_size=64, teacher=str(digits.run_dir),
                    out=str(tmp_path / "r"))  # fmt: skip


def test_a_missing_teacher_and_a_second_objective_are_refused(digits, tmp_path):
    with pytest.raises(RecogError, match=r"--teacher .*nowhere: no such run directory"):
        recog.train("digits", "cnn", epochs=1, teacher=str(tmp_path / "nowhere"),
                    out=str(tmp_path / "r"))  # fmt: skip
    with pytest.raises(RecogError, match="--teacher and --adv-train: one training objective"):
        recog.train("digits", "cnn", epochs=1, teacher=str(digits.run_dir), adv_train="pgd",
                    out=str(tmp_path / "r"))  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_distillation_settings_without_a_teacher_are_refused(tmp_path):
    from helpers import run_cli

    proc = run_cli("train", "--data", "digits", "--distill-weight", "0.3",
                   "--out", str(tmp_path / "r"))  # fmt: skip
    assert proc.returncode == 2 and "--distill-weight: only with --teacher RUN" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()
    with pytest.raises(RecogError, match="only with a teacher run"):
        recog.train("digits", "cnn", distill_temperature=2.0, out=str(tmp_path / "r2"))
    with pytest.raises(RecogError, match="distill_weight must be greater than 0"):
        recog.train("digits", "cnn", distill_weight=0.0, teacher="x", out=str(tmp_path / "r3"))


@pytest.mark.slow
def test_yolo_s_teaches_yolo_n_through_the_engine(tmp_path):
    teacher = recog.train("shapes:8:4", "yolo_s", epochs=1, img_size=64, batch_size=4,
                          out=str(tmp_path / "teacher"))  # fmt: skip
    run = recog.train("shapes:8:4", "yolo_n", epochs=1, img_size=64, batch_size=4,
                      teacher=str(teacher.run_dir), out=str(tmp_path / "student"))  # fmt: skip
    with open(run.run_dir / "results.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert float(row["train_kd_box"]) >= 0 and float(row["train_kd_cls"]) >= 0
    assert float(row["train_kd"]) == pytest.approx(
        float(row["train_kd_box"]) + float(row["train_kd_cls"]), rel=1e-3
    )
    cfg = yaml.safe_load((run.run_dir / "config.yaml").read_text())
    assert cfg["teacher"] == str(teacher.run_dir) and cfg["distill_temperature"] == 4.0
    with pytest.raises(RecogError, match="trained at 64 px and the student trains at 96 px"):
        recog.train("shapes:8:4", "yolo_n", epochs=1, img_size=96, teacher=str(teacher.run_dir),
                    out=str(tmp_path / "r"))  # fmt: skip

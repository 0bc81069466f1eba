"""`--adv-train` through the one engine: robust validation columns for every task, and a
classifier that actually gets more robust."""

from __future__ import annotations

import csv

import pytest
import yaml

import recog
from recog.errors import RecogError


def _rows(run_dir):
    with open(run_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


# 56 s on 2 cores: in `make test-all`; pgd and trades training stay in the default suite
@pytest.mark.slow
def test_fgsm_rs_training_makes_the_digits_classifier_more_robust(digits, tmp_path):
    """Same data, model, epochs and batch as the session's standard `digits` model."""
    adv = recog.train("digits", "cnn", epochs=2, batch_size=64, adv_train="fgsm-rs",
                      adv_eps=0.1, out=str(tmp_path / "adv"))  # fmt: skip
    rows = _rows(adv.run_dir)
    assert len(rows) == 2 and {"top1", "robust_top1", "robust_macro_f1"} <= set(rows[0])
    cfg = yaml.safe_load((adv.run_dir / "config.yaml").read_text())
    assert (cfg["adv_train"], cfg["adv_eps"], cfg["adv_steps"]) == ("fgsm-rs", 0.1, 10)
    plan = dict(eps=[0.1], steps=10, images=120)
    standard = digits.attack(save_dir=tmp_path / "std-rob", **plan)
    robust = adv.attack(save_dir=tmp_path / "adv-rob", **plan)
    assert robust["clean"]["top1"] >= 0.6
    assert robust["robust"][0]["top1"] >= standard["robust"][0]["top1"] + 0.2, (standard, robust)
    assert abs(float(rows[-1]["robust_top1"]) - robust["robust"][0]["top1"]) < 0.25


@pytest.mark.parametrize(
    "model,metric",
    # the detector's case is slow (13 s); the default suite keeps the dense one beside the
    # classifier's tests above
    [("unet", "robust_miou"), pytest.param("yolo_n", "robust_map50", marks=pytest.mark.slow)],
)
def test_adversarial_training_runs_for_every_task(model, metric, tmp_path):
    run = recog.train("shapes:16:8", model, epochs=1, img_size=64, batch_size=8,
                      adv_train="pgd", adv_eps=2 / 255, adv_steps=2, out=str(tmp_path / model))  # fmt: skip
    row = _rows(run.run_dir)[0]
    assert metric in row and 0.0 <= float(row[metric]) <= 1.0
    assert float(row["train_loss"]) == float(row["train_loss"])  # finite, attacked batches trained


def test_trades_is_refused_for_a_model_without_class_logits(tmp_path):
    with pytest.raises(RecogError, match="trades needs a model that answers class logits"):
        recog.train("shapes:16:8", "unet", epochs=1, img_size=64, adv_train="trades",
                    out=str(tmp_path / "t"))  # fmt: skip
    assert not (tmp_path / "t" / "config.yaml").exists()


@pytest.mark.slow  # 15 s; pgd training of every task stays in the default suite
def test_trades_trains_a_classifier(tmp_path):
    run = recog.train("digits", "cnn", epochs=1, batch_size=64, adv_train="trades", adv_eps=0.05,
                      adv_steps=2, img_size=16, out=str(tmp_path / "trades"))  # fmt: skip
    row = _rows(run.run_dir)[0]
    assert float(row["train_trades_kl"]) >= 0 and "robust_top1" in row


def test_an_attack_setting_without_adversarial_training_is_refused(tmp_path):
    from helpers import run_cli

    proc = run_cli("train", "--data", "digits", "--adv-eps", "8/255", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "--adv-eps: only with --adv-train" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()
    with pytest.raises(RecogError, match="only with adv_train"):
        recog.train("digits", "cnn", adv_steps=3, out=str(tmp_path / "r2"))


def test_the_kept_epoch_is_the_most_robust_one(tmp_path):
    """Robust overfitting (Rice et al. 2020): an adversarially trained run keeps the epoch
    with the best robust primary metric, and its metrics.json carries that epoch's robust
    numbers beside the clean ones."""
    run = recog.train("digits", "cnn", epochs=3, batch_size=64, adv_train="fgsm-rs",
                      adv_eps=0.1, img_size=16, out=str(tmp_path / "adv"))  # fmt: skip
    rows = _rows(run.run_dir)
    robust = [float(r["robust_top1"]) for r in rows]
    kept = robust.index(max(robust))  # the first of the best, as the engine keeps it
    metrics = recog.io.read_json(run.run_dir / "metrics.json")
    assert metrics["best_epoch"] == kept + 1, (robust, metrics["best_epoch"])
    assert metrics["robust_top1"] == pytest.approx(robust[kept])
    assert metrics["top1"] == pytest.approx(float(rows[kept]["top1"]))


def test_adv_mix_blends_the_clean_and_the_attacked_loss(tmp_path):
    import torch

    from recog.robust.training import AdversarialObjective

    run = recog.train("digits", "cnn", epochs=1, batch_size=64, img_size=16,
                      out=str(tmp_path / "std"))  # fmt: skip
    val = run.task.data.splits(run.config).val
    batch = run.task.collate([val[i] for i in range(16)])
    model = run.model.eval()  # no dropout: the three losses see the same network

    def loss(mix: float) -> dict:
        torch.manual_seed(0)  # the same PGD random start each time
        objective = AdversarialObjective("pgd", 0.1, 3, run.task, mix=mix)
        return objective.loss(run.task, model, model, batch)

    attacked, half = loss(0.0), loss(0.5)
    clean = float(run.task.loss(model, batch)["loss"].detach())
    adv, blend = float(attacked["loss"].detach()), float(half["loss"].detach())
    assert adv > clean + 0.01  # the attack raised it
    assert float(half["clean_loss"]) == pytest.approx(clean, rel=1e-5)
    assert blend == pytest.approx(0.5 * clean + 0.5 * adv, rel=1e-5)
    assert half["loss"].requires_grad and "clean_loss" not in attacked
    with pytest.raises(RecogError, match="--adv-mix: trades weighs its clean loss itself"):
        AdversarialObjective("trades", 0.1, 3, run.task, mix=0.5)
    with pytest.raises(RecogError, match="adv_mix: only with adv_train"):
        recog.train("digits", "cnn", adv_mix=0.5, out=str(tmp_path / "refused"))

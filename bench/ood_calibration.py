"""Calibration and "none of these": the numbers behind `recog calibrate` and the default OOD score.

Experiments (each a real `recog.train` run, then `Recognizer.calibrate`,
`fit_ood` and `ood_report`, as `recog calibrate` / `recog ood` call them):

- `digits-cnn`: `cnn` on the built-in digits.  Temperature scaling's ECE and
  NLL before/after on the validation split; OOD AUROC / FPR at 95% TPR per
  score against far OOD: uniform noise (200 generated images) and hymenoptera
  photos (its val/ folder, resized by the run's own preprocessing).
- `digits06-cnn`: `cnn` trained on the digits 0-6 only (class folders this
  script writes); near OOD: its validation digits against every 7, 8 and 9.
- `digits-resnet18`: `resnet18` on digits; temperature scaling's ECE before/after.
- `hymenoptera-resnet18`: `resnet18` on hymenoptera (the recipe's defaults,
  `--time` to cap it); ECE before/after; OOD against the raccoon photos.

    .venv/bin/python bench/ood_calibration.py                       # all four (long on CPU)
    .venv/bin/python bench/ood_calibration.py --only digits-cnn,digits06-cnn --epochs 5

Prints per experiment the ECE ratio after/before and the AUROC table, then
the default-score rule: the score with the highest mean AUROC over the
digits OOD sets (far and near) is `recog.confidence.ood.DEFAULT_SCORE`'s
candidate.  `--json PATH` also writes every number.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, header  # noqa: E402

SEED = 0
EXPERIMENTS = ("digits-cnn", "digits06-cnn", "digits-resnet18", "hymenoptera-resnet18")


def _noise(folder: Path, n: int = 200) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            folder / f"noise{i:03d}.png"
        )
    return folder


def _digits_split(root: Path) -> tuple[Path, Path]:
    """Digits 0-6 as class folders (trainable), and every 7, 8 and 9 as plain images."""
    from recog.data.formats.digits import digits_images

    images, labels = digits_images()
    known, unknown = root / "digits06", root / "digits789"
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = known / str(label) if label <= 6 else unknown
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"d{i:04d}.png")
    return known, unknown


def _train(data: str, model: str, out: Path, ns: argparse.Namespace, **extra: Any):
    import recog

    budget: dict[str, Any] = dict(extra)
    epochs = ns.resnet_epochs if model == "resnet18" else ns.epochs
    if epochs:
        budget["epochs"] = epochs
    if ns.time and "epochs" not in budget:
        from recog.config import parse_duration

        budget["time"] = parse_duration(ns.time)
    start = time.perf_counter()
    rec = recog.train(data, model, out=str(out), device=ns.device, seed=SEED, **budget)
    return rec, time.perf_counter() - start


def _calibration(rec) -> dict[str, float]:
    cal = rec.calibrate(save=True)
    row = {
        "temperature": cal.temperature,
        "ece_before": cal.ece_before,
        "ece_after": cal.ece_after,
        "nll_before": cal.nll_before,
        "nll_after": cal.nll_after,
        "images": cal.images,
    }
    print(
        f"  temperature {cal.temperature:.4f}: ECE {cal.ece_before:.4f} -> {cal.ece_after:.4f} "
        f"(after/before {cal.ece_after / max(cal.ece_before, 1e-12):.3f}x), "
        f"NLL {cal.nll_before:.4f} -> {cal.nll_after:.4f} on {cal.images} images"
    )
    return row


def _ood(rec, name: str, out: Path, inputs: Path | None = None) -> dict[str, dict[str, float]]:
    table = rec.ood_report(
        str(out),
        inputs=None if inputs is None else str(inputs),
        save_dir=rec.run_dir / f"ood-{name}",
    )
    print(
        f"  OOD vs {name}:  "
        + "  ".join(
            f"{score} AUROC {row['auroc']:.4f} FPR95 {row['fpr95']:.4f}"
            for score, row in table.items()
        )
    )
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(EXPERIMENTS), help="comma-separated experiments")
    parser.add_argument("--epochs", type=int, help="cnn epochs (default: the recipe's)")
    parser.add_argument("--resnet-epochs", type=int, help="resnet18 epochs (default: the recipe's)")
    parser.add_argument(
        "--time", help="cap each run without epochs at this much training time, e.g. 10m"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write every number here")
    ns = parser.parse_args()
    chosen = [e.strip() for e in ns.only.split(",") if e.strip()]
    unknown = sorted(set(chosen) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown experiments {unknown}; one of {', '.join(EXPERIMENTS)}")
    print(header("calibration and out-of-distribution scores", seed=SEED))
    work = ns.work or Path(tempfile.mkdtemp(prefix="recog-ood-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    hymenoptera, raccoon = SHARED_DATA / "hymenoptera", SHARED_DATA / "raccoon" / "images"

    if "digits-cnn" in chosen:
        print("digits-cnn")
        rec, seconds = _train("digits", "cnn", work / "digits-cnn", ns)
        row: dict[str, Any] = {"train_seconds": seconds, "calibration": _calibration(rec)}
        row["ood"] = {"noise": _ood(rec, "noise", _noise(work / "noise"))}
        if hymenoptera.is_dir():
            row["ood"]["hymenoptera"] = _ood(rec, "hymenoptera", hymenoptera / "val")
        results["digits-cnn"] = row
    if "digits06-cnn" in chosen:
        print("digits06-cnn (near OOD: 7, 8, 9)")
        known, unknown_digits = _digits_split(work / "digits-split")
        rec, seconds = _train(str(known), "cnn", work / "digits06-cnn", ns, img_size=32, hflip=0.0)
        results["digits06-cnn"] = {
            "train_seconds": seconds,
            "ood": {"digits789": _ood(rec, "digits 7-9", unknown_digits)},
        }
    if "digits-resnet18" in chosen:
        print("digits-resnet18")
        rec, seconds = _train("digits", "resnet18", work / "digits-resnet18", ns)
        results["digits-resnet18"] = {"train_seconds": seconds, "calibration": _calibration(rec)}
    if "hymenoptera-resnet18" in chosen and hymenoptera.is_dir():
        print("hymenoptera-resnet18")
        rec, seconds = _train(str(hymenoptera), "resnet18", work / "hymenoptera-resnet18", ns)
        row = {"train_seconds": seconds, "calibration": _calibration(rec)}
        if raccoon.is_dir():
            row["ood"] = {"raccoon": _ood(rec, "raccoon", raccoon)}
        results["hymenoptera-resnet18"] = row

    digit_sets = [
        table
        for name in ("digits-cnn", "digits06-cnn")
        for table in results.get(name, {}).get("ood", {}).values()
    ]
    if digit_sets:
        means = {
            score: float(np.mean([t[score]["auroc"] for t in digit_sets]))
            for score in digit_sets[0]
        }
        best = max(means, key=means.__getitem__)
        print(
            "mean AUROC over the digits OOD sets: "
            + ", ".join(f"{s} {v:.4f}" for s, v in means.items())
            + f"  -> default candidate: {best}"
        )
        results["mean_auroc_digits"] = means
        results["default_candidate"] = best
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {ns.json}")
    print(f"runs in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

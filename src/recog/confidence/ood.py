"""Out-of-distribution scores and the "none of these" rule a run keeps.

Every score is higher for images like the training data:

- `msp`: the maximum soft-max probability (Hendrycks & Gimpel 2017).
- `energy`: logsumexp of the logits, the negative free energy (Liu et al. 2020).
- `knn`: minus the distance from the L2-normalized penultimate feature to its
  k-th nearest neighbour among the training images' (Sun et al. 2022, "Out-of-
  Distribution Detection with Deep Nearest Neighbors").
- `mahalanobis`: minus the smallest Mahalanobis distance of the penultimate
  feature to a class mean, with one shared (Ledoit-Wolf shrunk) covariance
  (Lee et al. 2018).
- `imagenet_knn`, `imagenet_mahalanobis`: the same two on the untouched
  ImageNet features of a pretrained network beside the run's model
  (`recog.confidence.imagenet`): what a fine-tuned or from-scratch model's own
  features forgot, a thousand ImageNet classes still tell.

Scores read raw logits (temperature 1), so a later `recog calibrate` never
moves a fitted threshold.  The rule keeps an image when its score is at least
the threshold fitted on in-distribution validation images at the chosen true-
positive rate (the fraction of them kept, default 95%).

Files: `RUN/ood_rule.json` (`score`, `threshold`, `tpr`, `k`, what it was
fitted on) and, for the feature scores, `RUN/ood_bank.safetensors` (the k-NN
bank of normalized training features, or the class means and precision).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from recog import io as rio
from recog.errors import RecogError

ScoreName = Literal["msp", "energy", "knn", "mahalanobis", "imagenet_knn", "imagenet_mahalanobis"]
SCORES: tuple[str, ...] = get_args(ScoreName)
#: the default score, by measurement (docs/confidence.md, bench/ood_calibration.py): the
#: highest mean AUROC over the OOD sets of the runs measured (digits cnns against noise,
#: photos and held-out digits 7-9; hymenoptera classifiers against raccoon photos).  k-NN on
#: the run's own features led on digits (0.996) but fell to 0.34 (resnet18 from scratch) and
#: 0.75 (efficientnet_lite0 fine-tuned) on the photo runs; on the untouched ImageNet features
#: it reached 1.000 / 1.000 / 0.967 on digits and 0.992 on raccoons (mean 0.990, msp 0.893)
DEFAULT_SCORE: ScoreName = "imagenet_knn"
#: where the ImageNet network's package is not installed: the soft-max, the run-feature-free
#: score that never fell below chance (0.68-0.998)
FALLBACK_SCORE: ScoreName = "msp"
#: the scores on the run's own penultimate features / on the untouched ImageNet features
RUN_FEATURE_SCORES = frozenset({"knn", "mahalanobis"})
IMAGENET_SCORES = frozenset({"imagenet_knn", "imagenet_mahalanobis"})
FEATURE_SCORES = RUN_FEATURE_SCORES | IMAGENET_SCORES
IMAGENET_PREFIX = "imagenet_"


def method(name: str) -> str:
    """The score's way of measuring (`knn`, `mahalanobis`, ...), whichever features it reads."""
    return name.removeprefix(IMAGENET_PREFIX)


RULE_NAME = "ood_rule.json"
BANK_NAME = "ood_bank.safetensors"
#: the most training features a k-NN bank keeps (a seeded subset beyond it; Sun et al. show
#: the score holds with a 1% sample of ImageNet)
BANK_MAX = 20_000


def default_k(n_bank: int) -> int:
    """k for a bank of `n_bank` features: Sun et al.'s k = 50 of CIFAR-10's 50,000 (0.1%),
    at least 1."""
    return max(1, min(n_bank, round(n_bank / 1000)))


@dataclass
class FeatureStats:
    """What the feature scores need from the training images.

    bank: (N, D) L2-normalized features (k-NN); means: (C, D) class means and
    precision: (D, D) shared inverse covariance (Mahalanobis); k: the neighbour.
    """

    bank: Tensor | None = None
    k: int = 1
    means: Tensor | None = None
    precision: Tensor | None = None

    @classmethod
    def fit(
        cls,
        features: Tensor,
        labels: Tensor,
        *,
        scores: tuple[str, ...] = ("knn", "mahalanobis"),
        k: int | None = None,
        seed: int = 0,
    ) -> FeatureStats:
        """From training features (N, D) and labels (N,)."""
        stats = cls()
        features = features.float()
        methods = {method(s) for s in scores}
        if "knn" in methods:
            bank = F.normalize(features, dim=1)
            if bank.shape[0] > BANK_MAX:
                gen = torch.Generator().manual_seed(seed)
                bank = bank[torch.randperm(bank.shape[0], generator=gen)[:BANK_MAX]]
            stats.bank = bank.contiguous()
            stats.k = int(k) if k is not None else default_k(bank.shape[0])
            if not 1 <= stats.k <= bank.shape[0]:
                raise RecogError(f"k {stats.k}: must be between 1 and the bank's {bank.shape[0]}")
        if "mahalanobis" in methods:
            stats.means, stats.precision = _class_gaussian(features, labels)
        return stats


def _class_gaussian(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    from sklearn.covariance import LedoitWolf

    classes = labels.unique()
    means = torch.stack([features[labels == c].mean(0) for c in classes])
    # class-conditional means (rows for the classes present), one covariance of the residuals
    centered = features - means[torch.searchsorted(classes, labels)]
    lw = LedoitWolf(assume_centered=True).fit(centered.double().numpy())
    precision = torch.from_numpy(lw.precision_).float()
    return means.contiguous(), precision.contiguous()


def score(name: str, logits: Tensor, features: Tensor | None, stats: FeatureStats | None) -> Tensor:
    """(B,) scores, higher = more like the training data.  logits (B, C); features (B, D)."""
    logits = logits.float()
    if name == "msp":
        return logits.softmax(1).amax(1)
    if name == "energy":
        return torch.logsumexp(logits, 1)
    if features is None or stats is None:
        raise RecogError(f"the {name} score needs penultimate features and training statistics")
    features = features.float()
    kind = method(name)
    if kind == "knn":
        if stats.bank is None:
            raise RecogError("the knn score needs a bank of training features")
        _check_width(features, stats.bank)
        sims = F.normalize(features, dim=1) @ stats.bank.T
        kth = sims.topk(min(stats.k, sims.shape[1]), dim=1).values[:, -1]
        return -(2.0 - 2.0 * kth).clamp_min(0).sqrt()
    if kind == "mahalanobis":
        if stats.means is None or stats.precision is None:
            raise RecogError("the mahalanobis score needs class means and a precision matrix")
        _check_width(features, stats.means)
        # (f - m)' P (f - m) expanded, so no (B, C, D) difference tensor is built (C may be 1000)
        f, m, p = features.double(), stats.means.double(), stats.precision.double()
        fp = f @ p
        dist = (fp * f).sum(1, keepdim=True) - 2.0 * fp @ m.T + ((m @ p) * m).sum(1)[None, :]
        return -dist.amin(1).float()
    raise RecogError(f"unknown out-of-distribution score {name!r} (one of {', '.join(SCORES)})")


def _check_width(features: Tensor, reference: Tensor) -> None:
    if features.shape[1] != reference.shape[1]:
        raise RecogError(
            f"the model's features have {features.shape[1]} values, the stored statistics "
            f"{reference.shape[1]}: fit them again (`recog calibrate`)"
        )


def threshold_at_tpr(scores: Tensor, tpr: float) -> float:
    """The largest threshold that keeps at least `tpr` of `scores` (kept: score >= threshold)."""
    if not 0.0 < tpr < 1.0:
        raise RecogError(f"--tpr {tpr}: must be between 0 and 1 (exclusive)")
    ordered = scores.double().sort(descending=True).values
    keep = max(1, math.ceil(tpr * ordered.numel() - 1e-9))
    return float(ordered[keep - 1].item())


def auroc_fpr95(in_scores: Tensor, out_scores: Tensor) -> dict[str, float]:
    """AUROC of telling in-distribution (positive) from OOD images, and the FPR at 95% TPR."""
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.concatenate([np.ones(len(in_scores)), np.zeros(len(out_scores))])
    s = torch.cat([in_scores, out_scores]).double().numpy()
    fpr, tpr, _ = roc_curve(y, s)
    return {
        "auroc": float(roc_auc_score(y, s)),
        "fpr95": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
    }


@dataclass
class OODRule:
    """Keep an image when `score` >= `threshold` (fitted to keep `tpr` of validation images)."""

    score: str
    threshold: float
    tpr: float
    stats: FeatureStats | None = None
    data: str = ""
    images: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: the pretrained record whose untouched features an `imagenet_*` score reads ("": none)
    features: str = ""
    _extractor: Any = field(default=None, repr=False, compare=False)

    @property
    def needs_features(self) -> bool:
        """Whether the score reads features at all (the run's or ImageNet's)."""
        return self.score in FEATURE_SCORES

    @property
    def needs_run_features(self) -> bool:
        return self.score in RUN_FEATURE_SCORES

    @property
    def needs_imagenet_features(self) -> bool:
        return self.score in IMAGENET_SCORES

    def imagenet(self) -> Any:
        """The `ImageNetFeatures` an `imagenet_*` score reads, loaded once (strictly)."""
        if self._extractor is None:
            from recog.confidence.imagenet import ImageNetFeatures
            from recog.models import pretrained

            self._extractor = ImageNetFeatures(pretrained.get(self.features))
        return self._extractor

    def scores(self, logits: Tensor, features: Tensor | None) -> Tensor:
        """(B,) scores; `features`: the run's penultimate features, or for an `imagenet_*`
        score the ImageNet features of the same images."""
        return score(self.score, logits, features, self.stats)

    @classmethod
    def fit(
        cls,
        name: str,
        logits: Tensor,
        features: Tensor,
        stats: FeatureStats | None,
        *,
        tpr: float = 0.95,
        data: str = "",
        features_from: str = "",
    ) -> OODRule:
        """The threshold at `tpr` on held-out in-distribution (N, C) logits / (N, D) features
        (for an `imagenet_*` score, the ImageNet features of record `features_from`)."""
        if name not in SCORES:
            raise RecogError(f"--ood-score {name}: one of {', '.join(SCORES)}")
        values = score(name, logits, features, stats)
        keep = stats if name in FEATURE_SCORES else None
        if keep is not None:  # only what this score reads is stored
            keep = FeatureStats(
                bank=keep.bank if method(name) == "knn" else None,
                k=keep.k,
                means=keep.means if method(name) == "mahalanobis" else None,
                precision=keep.precision if method(name) == "mahalanobis" else None,
            )
        threshold = threshold_at_tpr(values, tpr)
        return cls(
            name,
            threshold,
            float(tpr),
            keep,
            data=data,
            images=int(values.numel()),
            extra={"kept": float((values >= threshold).double().mean())},
            features=features_from if name in IMAGENET_SCORES else "",
        )

    # ---------------------------------------------------------------- files
    def save(self, run_dir: Path) -> list[Path]:
        run_dir = Path(run_dir)
        written = []
        bank_path = run_dir / BANK_NAME
        if self.stats is not None and self.needs_features:
            tensors = {
                k: v
                for k, v in (
                    ("bank", self.stats.bank),
                    ("means", self.stats.means),
                    ("precision", self.stats.precision),
                )
                if v is not None
            }
            rio.save_weights(bank_path, tensors, {"kind": "ood_bank", "score": self.score})
            written.append(bank_path)
        else:
            bank_path.unlink(missing_ok=True)
        record = {
            "score": self.score,
            "threshold": self.threshold,
            "tpr": self.tpr,
            "k": self.stats.k if self.stats is not None and method(self.score) == "knn" else None,
            "bank": BANK_NAME if written else None,
            "data": self.data,
            "images": self.images,
            "val_kept": self.extra.get("kept"),
            "features": self.features or None,
            "format_version": rio.FORMAT_VERSION,
        }
        path = run_dir / RULE_NAME
        rio.atomic_write_text(path, json.dumps(record, indent=2) + "\n")
        return [path, *written]

    @classmethod
    def load(cls, run_dir: Path) -> OODRule | None:
        """The run's rule, None when it has none; a bad file is one RecogError naming it."""
        path = Path(run_dir) / RULE_NAME
        if not path.is_file():
            return None
        raw: Any = rio.read_json(path)
        if not isinstance(raw, dict) or raw.get("score") not in SCORES:
            got = raw.get("score") if isinstance(raw, dict) else raw
            raise RecogError(f"{path}: `score` must be one of {', '.join(SCORES)}, not {got!r}")
        threshold, tpr = raw.get("threshold"), raw.get("tpr")
        if not _finite(threshold):
            raise RecogError(f"{path}: `threshold` must be a finite number, not {threshold!r}")
        if not _finite(tpr) or not 0 < tpr < 1:
            raise RecogError(f"{path}: `tpr` must be a number between 0 and 1, not {tpr!r}")
        stats = None
        if raw["score"] in FEATURE_SCORES:
            stats = _load_stats(Path(run_dir) / BANK_NAME, raw)
        features = raw.get("features") or ""
        if raw["score"] in IMAGENET_SCORES:
            from recog.models.pretrained import TABLE

            if features not in TABLE:
                raise RecogError(
                    f"{path}: `features` must name a pretrained record ({', '.join(TABLE)}), "
                    f"not {features!r}"
                )
        return cls(
            raw["score"],
            float(threshold),
            float(tpr),
            stats,
            data=str(raw.get("data", "")),
            images=raw.get("images") if isinstance(raw.get("images"), int) else 0,
            features=features if raw["score"] in IMAGENET_SCORES else "",
        )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _load_stats(path: Path, raw: dict[str, Any]) -> FeatureStats:
    if not path.is_file():
        raise RecogError(
            f"{path}: missing (the {raw['score']} rule needs it; run `recog calibrate`)"
        )
    tensors = rio.load_weights(path)
    if method(raw["score"]) == "knn":
        bank, k = tensors.get("bank"), raw.get("k")
        if bank is None or bank.ndim != 2 or bank.shape[0] == 0:
            raise RecogError(f"{path}: no (N, D) `bank` of features")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= bank.shape[0]:
            raise RecogError(
                f"{path.with_name(RULE_NAME)}: `k` must be 1..{bank.shape[0]}, not {k!r}"
            )
        return FeatureStats(bank=bank.float(), k=k)
    means, precision = tensors.get("means"), tensors.get("precision")
    if (
        means is None
        or precision is None
        or means.ndim != 2
        or precision.shape != (means.shape[1], means.shape[1])
    ):
        raise RecogError(f"{path}: needs (C, D) `means` and a (D, D) `precision`")
    return FeatureStats(means=means.float(), precision=precision.float())

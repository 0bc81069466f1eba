"""How far to trust a classifier's answer: calibrated confidence and "none of these".

- `calibration`: temperature scaling (Guo et al. 2017) fitted on held-out
  logits, its before/after ECE and NLL, and `RUN/calibration.json`.
- `ood`: out-of-distribution scores (max-softmax, energy, k-NN on normalized
  penultimate features, Mahalanobis), AUROC and FPR at 95% TPR, and the
  reject rule a run keeps (`RUN/ood_rule.json` + `RUN/ood_bank.safetensors`).
- `features`: the penultimate features of any registered classifier (a hook
  on the input of its head) and one pass over a dataset or image files.
- `imagenet`: the untouched ImageNet features of a pretrained network beside
  the run's model, which the `imagenet_*` scores (the default) read.
- `rules`: what a loaded run applies at prediction time (`Confidence`).
- `facet`: what differs by task (`CONFIDENCE`: which tasks answer class logits, the
  logits, the reference images).

Everything here asks the facet, never the task, what differs by task; it sits beside explain/robust/deploy, below the API.
"""

from __future__ import annotations

from recog.confidence.calibration import Calibration, fit_temperature
from recog.confidence.ood import DEFAULT_SCORE, FALLBACK_SCORE, SCORES, OODRule
from recog.confidence.rules import CONFIDENCE_FILES, Confidence

__all__ = [
    "CONFIDENCE_FILES",
    "DEFAULT_SCORE",
    "FALLBACK_SCORE",
    "SCORES",
    "Calibration",
    "Confidence",
    "OODRule",
    "fit_temperature",
]

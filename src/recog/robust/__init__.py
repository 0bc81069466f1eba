"""Adversarial robustness for every task: attacks, the robustness curve, adversarial training.

- `facet`: what an attack asks of each task (`ROBUST`: the attacked loss, the model's
  answer as a ground truth, a detector's vanish objective);
- `objective`: what an attack differentiates (the facet's losses, the model in its loss
  mode) and the gradient check;
- `attacks`: recog's own FGSM and PGD on any objective (detectors, segmenters,
  adversarial training);
- `square`: recog's own Square (no gradients, L-inf) on any objective, for detectors and
  segmenters;
- `library`: classifier attacks through torchattacks (FGSM, PGD, CW, Square, AutoAttack);
- `measure`: the clean and attacked metrics at each eps, with the masking checks;
- `output`, `run`: `RUN/robustness/` and the report section;
- `training`: the training objective `--adv-train` gives the engine.
"""

from recog.robust.measure import ATTACKS, DEFAULT_EPS, AttackPlan, Robustness

__all__ = ["ATTACKS", "DEFAULT_EPS", "AttackPlan", "Robustness"]

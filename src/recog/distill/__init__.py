"""Knowledge distillation: a trained run (`--teacher RUN`) teaches the model being trained.

- `objective`: `DistillObjective`, the training objective the engine calls (the blend
  (1 - w) * task loss + w * KD), and `distill_objective`, which checks that a teacher
  can teach the run (task, classes, preprocessing, the task's own conditions) first.

What differs by task is the distill facet (`facet`: `DISTILL`, the teacher's check and
the loss with its KD term), with the formulas in `divergences`: Hinton et al. (2015) for classifiers; for recog's YOLO, the
teacher's per-point class probabilities as soft targets plus Localization Distillation
(Zheng et al., CVPR 2022) on the DFL box bins.  See docs/distill.md.
"""

from recog.distill.objective import DistillObjective, distill_objective

__all__ = ["DistillObjective", "distill_objective"]

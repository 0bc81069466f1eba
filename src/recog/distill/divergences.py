"""The divergences knowledge distillation minimizes, for the distill facet (`recog.distill.facet`).

Pure tensor functions, no model and no task: the classifier's facet uses
`softened_kl`, the detector's (recog's YOLO) `sigmoid_kl` and `bins_kl`.
The objective that blends them with the task loss is `recog.distill`.

- `softened_kl`: Hinton, Vinyals and Dean (2015), "Distilling the knowledge in a
  neural network": KL(softmax(t / T) || softmax(s / T)) times T^2, so the gradient's
  scale does not shrink as T grows (their section 2).
- `sigmoid_kl`: the same soft targets for independent sigmoid classes: the Bernoulli
  KL between the teacher's and the student's per-class probabilities, i.e. the BCE
  against the teacher's probabilities minus the teacher's own entropy (zero when the
  student answers what the teacher answers; the gradient is the BCE's).
- `bins_kl`: Localization Distillation (Zheng et al., CVPR 2022): KL between the
  teacher's and the student's temperature-softened distributions over the DFL bins of
  each box side, times T^2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softened_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's KD term: student and teacher logits (B, C) -> scalar, the KL per image
    (mean over the batch) between the temperature-softened distributions, times T^2."""
    t = float(temperature)
    log_p = F.log_softmax(student.float() / t, dim=-1)
    target = F.log_softmax(teacher.float() / t, dim=-1)
    return F.kl_div(log_p, target, reduction="batchmean", log_target=True) * (t * t)


def sigmoid_kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Elementwise Bernoulli KL(sigmoid(teacher) || sigmoid(student)) of logits of any
    shape (same shape out): the BCE against the teacher's probability minus its entropy."""
    p = teacher.float().sigmoid()
    bce = F.binary_cross_entropy_with_logits(student.float(), p, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(teacher.float(), p, reduction="none")
    return bce - entropy


def bins_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """LD's term: DFL logits (..., 4, R) -> (...), the KL over the R bins of each side
    between the temperature-softened distributions, times T^2, averaged over the 4 sides."""
    t = float(temperature)
    log_p = F.log_softmax(student.float() / t, dim=-1)
    target = F.log_softmax(teacher.float() / t, dim=-1)
    kl = (target.exp() * (target - log_p)).sum(-1)
    return kl.mean(-1) * (t * t)

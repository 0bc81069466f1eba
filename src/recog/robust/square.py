"""recog's own Square attack (Andriushchenko et al., ECCV 2020), L-inf, on any objective.

Own code, not a library's: torchattacks' and AutoAttack's Square score a classifier's
margin (class logits and a label per image); here the objective is whatever
`recog.robust.objective` builds from the Task seam (a detector's or a segmenter's own
loss with the ground truth), so the black-box check on the gradient attacks' numbers
(`recog.robust.output.compare_attacks`) applies to every task.  It calls the objective
only, never its gradient: a model whose gradient is masked (a rounding or detached input
step) is attacked as well as any other.

The objective answers one scalar for the whole batch, so a candidate is kept or dropped
for the whole batch: `recog.robust.measure` hands it one image at a time.
"""

from __future__ import annotations

import math

import torch

from recog.errors import RecogError
from recog.robust.objective import Objective

#: the paper's iterations (of 10,000) after which the window's share p halves
HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def share(p_init: float, query: int, queries: int) -> float:
    """The image's share p that query `query` of `queries` perturbs: the paper's schedule
    for 10,000 queries, rescaled to `queries`."""
    at = int(query / queries * 10_000)
    return p_init / 2 ** sum(at > h for h in HALVINGS)


def side(p: float, height: int, width: int) -> int:
    """The window's side for a share `p` of the image: at least 1, at most the image."""
    return min(height, width, max(1, round(math.sqrt(p * height * width))))


def square(
    objective: Objective,
    images: torch.Tensor,
    *,
    eps: float,
    queries: int,
    seed: int,
    p_init: float = 0.05,
) -> torch.Tensor:
    """Random search raising `objective` within the L-inf ball of radius `eps` (and [0, 1]).

    The start is vertical stripes (each column and channel moved by +-eps); each query then
    sets one square window, channel by channel, to the clean image +-eps, and the candidate
    is kept only where the objective rose.  `queries` objective calls in all (the start is
    the first), plus one on the clean image, which is returned when nothing beats it.  A
    local generator seeded with `seed` makes the attack repeatable.
    """
    if eps <= 0 or queries < 1:
        raise RecogError("square: eps must be positive and queries at least 1")
    clean = images.detach().float()
    n, channels, height, width = clean.shape
    generator = torch.Generator().manual_seed(int(seed))

    def signs(*shape: int) -> torch.Tensor:
        drawn = torch.randint(0, 2, shape, generator=generator) * 2 - 1
        return drawn.to(device=clean.device, dtype=clean.dtype)

    with torch.no_grad():
        best, best_value = clean, float(objective(clean))
        stripes = (clean + eps * signs(n, channels, 1, width)).clamp(0, 1)
        value = float(objective(stripes))
        if value > best_value:
            best, best_value = stripes, value
        for query in range(1, queries):
            s = side(share(p_init, query, queries), height, width)
            top = int(torch.randint(0, height - s + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - s + 1, (1,), generator=generator))
            window = (slice(None), slice(None), slice(top, top + s), slice(left, left + s))
            current = best[window]
            # the paper draws the signs again while the window would stay as it is
            for _ in range(8):
                patch = (clean[window] + eps * signs(n, channels, 1, 1)).clamp(0, 1)
                if not torch.equal(patch, current):
                    break
            else:
                continue
            candidate = best.clone()
            candidate[window] = patch
            value = float(objective(candidate))
            if value > best_value:
                best, best_value = candidate, value
    return best.detach()

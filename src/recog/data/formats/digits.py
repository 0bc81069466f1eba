"""`digits`: scikit-learn's 1,797 handwritten 8x8 digits (shipped inside scikit-learn), built in."""

from __future__ import annotations

import torch


def digits_images() -> tuple[torch.Tensor, list[int]]:
    """(1797, 3, 8, 8) uint8 and labels 0..9."""
    # scikit-learn is imported only when the digits are asked for (it is slow to import)
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(d.images * (255.0 / 16.0)).round().to(torch.uint8)
    return images[:, None].expand(-1, 3, -1, -1).contiguous(), [int(t) for t in d.target]

"""How every task draws: one colour per class, labels in a TrueType font sized to the image.

The tasks' `draw` methods call these, so a box, a banner and a mask PNG look the
same in `recog predict --save-dir`, the report's sample grid and the web page.
The font is matplotlib's DejaVu Sans (matplotlib is a core dependency and ships
it inside its package, so it is there on every install, without a network);
Pillow's 10 px bitmap default was unreadable on a 2592 px photo (issue 17).
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import draw_bounding_boxes

#: what a font is sized to: this fraction of the image's shorter side, at least MIN_FONT px
FONT_FRACTION = 1 / 30
MIN_FONT = 11
#: the colour of ignored mask pixels (255) in a palette PNG
IGNORE_COLOUR = (255, 255, 255)


def palette(n: int) -> list[tuple[int, int, int]]:
    """n distinct colours (matplotlib's tab20, then repeated): class k is colour k everywhere."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [tuple(int(255 * c) for c in cmap(i % 20)[:3]) for i in range(n)]  # type: ignore[misc]


@lru_cache(maxsize=1)
def font_path() -> str:
    """DejaVu Sans, from matplotlib's own data folder (no system font is needed)."""
    from matplotlib import font_manager

    return str(font_manager.findfont("DejaVu Sans", fallback_to_default=True))


def font_size(height: int, width: int) -> int:
    """Label size in pixels for an image of this size: readable at 64 px and at 2592 px."""
    return max(MIN_FONT, round(min(height, width) * FONT_FRACTION))


def line_width(height: int, width: int) -> int:
    """Box outline width: 1 px on a thumbnail, a few on a photo."""
    return max(1, round(min(height, width) / 300))


def draw_boxes(
    image: torch.Tensor,
    boxes: torch.Tensor,
    class_ids: torch.Tensor,
    labels: list[str] | None,
    num_classes: int,
) -> torch.Tensor:
    """(3, H, W) uint8 with `boxes` (N, 4) xyxy outlined in their class's colour, and
    `labels` on a filled background of the same colour."""
    if not len(boxes):
        return image
    h, w = image.shape[-2:]
    colours = palette(num_classes)
    per_box = [colours[int(c)] for c in class_ids]
    return draw_bounding_boxes(
        image.cpu(), boxes.float().cpu(), labels=labels, colors=per_box,
        width=line_width(h, w), font=font_path(), font_size=font_size(h, w),
        label_colors=[text_colour(c) for c in per_box], fill_labels=True,
    )  # fmt: skip


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on a light colour, white on a dark one (ITU-R BT.601 luma above or below half):
    tab20's pale blues and greens made white text unreadable."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 128 else (255, 255, 255)


def banner(image: torch.Tensor, text: str) -> torch.Tensor:
    """(3, H, W) uint8 with `text` in white on a black band across the top, sized to the image."""
    pil = Image.fromarray(image.permute(1, 2, 0).cpu().numpy())
    size = font_size(pil.height, pil.width)
    font = ImageFont.truetype(font_path(), size)
    canvas = ImageDraw.Draw(pil)
    lines = text.count("\n") + 1
    canvas.rectangle((0, 0, pil.width, round(size * 1.3 * lines) + 4), fill=(0, 0, 0))
    canvas.multiline_text((3, 2), text, fill=(255, 255, 255), font=font)
    return torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).contiguous()


def palette_png(mask: torch.Tensor, num_classes: int) -> bytes:
    """(H, W) class ids (< 256) -> a palette ("P" mode) PNG: each pixel's value is still its
    class id (what a program reads back), and the palette shows class k in colour k
    (255, ignored, in white), so the file is not a black picture in a viewer."""
    pil = Image.fromarray(mask.to(torch.uint8).cpu().numpy())  # "L": the ids as they are
    table = [(0, 0, 0)] * 256
    table[:num_classes] = palette(num_classes)
    table[255] = IGNORE_COLOUR
    pil.putpalette([v for rgb in table for v in rgb])  # an "L" image becomes "P", values kept
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()

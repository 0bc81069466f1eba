"""`shapes`: a procedural scene generator for detection and segmentation.

Each scene is rendered on demand from (seed, index), so a dataset of any size
costs no disk and the same seed gives the same pixels on every machine.
A scene has a noisy, textured background and 1..`max_objects` shapes
(circle, square, triangle, star, hexagon by default) with random colour,
size and rotation; shapes may overlap, later ones occluding earlier ones,
but no shape is hidden by more than `max_occlusion` of its area.  Every
scene yields boxes (of the visible part), instance masks and a semantic mask.

Written here because no library generates box- and mask-annotated synthetic
scenes with controlled occlusion.  A data spec `shapes` or `shapes:TRAIN:VAL`
names them (`parse_shapes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from recog.data.formats import DataFormat, detect_format
from recog.errors import RecogError

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "hexagon")


SHAPES_TRAIN, SHAPES_VAL = 2000, 300


#: the most scenes `shapes:TRAIN:VAL` generates: 100,000 scenes of 128 px are 4.9 GB decoded
#: (`shapes:999999999999:1` once asked for 8 TB); a set past it is a set on disk
MAX_SCENES = 100_000


def parse_shapes(spec: str) -> tuple[int, int] | None:
    """`shapes` or `shapes:TRAIN:VAL` (scene counts) -> (train, val); None for other specs."""
    if detect_format(spec, among=(DataFormat.SHAPES,)) is None:
        return None
    parts = spec.split(":")
    if len(parts) == 1:
        return SHAPES_TRAIN, SHAPES_VAL
    if len(parts) > 3:
        raise RecogError(f"{spec}: expected shapes or shapes:TRAIN:VAL with scene counts")
    try:
        train, val = (
            (int(p) for p in parts[1:3])
            if len(parts) == 3
            else (int(parts[1]), max(1, int(parts[1]) // 5))
        )
    except ValueError as exc:
        raise RecogError(f"{spec}: expected shapes or shapes:TRAIN:VAL with scene counts") from exc
    if train < 1 or val < 1:
        raise RecogError(f"{spec}: scene counts must be positive")
    if train + val > MAX_SCENES:
        raise RecogError(f"{spec}: at most {MAX_SCENES} scenes in all, not {train + val}")
    return train, val


@dataclass(frozen=True)
class ShapesConfig:
    img_size: int = 128
    classes: tuple[str, ...] = SHAPE_CLASSES
    max_objects: int = 4
    min_size: float = 0.12  # shape diameter as a fraction of the image side
    max_size: float = 0.4
    max_occlusion: float = 0.4
    noise: float = 12.0  # std of per-pixel noise, 0..255 scale


@dataclass
class ShapesScene:
    """image (3, H, W) uint8; boxes (N, 4) float xyxy pixels; labels (N,) int64;
    masks (N, H, W) bool (visible pixels); mask (H, W) int64, 0 = background, k + 1 = class k."""

    image: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    mask: torch.Tensor


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        corners, radii = 4, [r]
    elif kind == "triangle":
        corners, radii = 3, [r]
    elif kind == "hexagon":
        corners, radii = 6, [r]
    elif kind == "star":
        corners, radii = 10, [r, r * 0.45]
    else:
        raise ValueError(kind)
    pts = []
    for i in range(corners):
        a = angle + 2 * math.pi * i / corners
        rad = radii[i % len(radii)]
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def _shape_mask(kind: str, size: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=255)
    return np.asarray(canvas) > 127


def _background(rng: np.random.Generator, size: int, noise: float) -> np.ndarray:
    """A smooth colour gradient plus low-frequency blotches and pixel noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(40, 215, size=3)
    slope = rng.uniform(-60, 60, size=(3, 2))
    img = base[:, None, None] + slope[:, 0, None, None] * x + slope[:, 1, None, None] * y
    coarse = rng.normal(0, 18, size=(3, 6, 6)).astype(np.float32)
    blotches = torch.nn.functional.interpolate(
        torch.from_numpy(coarse)[None], size=(size, size), mode="bicubic", align_corners=False
    )[0].numpy()
    img = img + blotches + rng.normal(0, noise, size=(3, size, size))
    return img


def render_scene(
    index: int, *, seed: int = 0, config: ShapesConfig = ShapesConfig()
) -> ShapesScene:
    """Scene number `index` of the dataset with this `seed` (pure function of its arguments)."""
    rng = np.random.default_rng([seed, index])
    size = config.img_size
    img = _background(rng, size, config.noise)
    n = int(rng.integers(1, config.max_objects + 1))
    visible: list[np.ndarray] = []
    labels: list[int] = []
    colours: list[np.ndarray] = []
    for _ in range(n * 6):  # a few attempts per object to respect max_occlusion
        if len(labels) == n:
            break
        label = int(rng.integers(len(config.classes)))
        r = rng.uniform(config.min_size, config.max_size) * size / 2
        cx, cy = rng.uniform(r * 0.6, size - r * 0.6, size=2)
        shape = _shape_mask(config.classes[label], size, cx, cy, r, rng.uniform(0, 2 * math.pi))
        if shape.sum() < 16:
            continue
        if any((v & shape).sum() > config.max_occlusion * v.sum() for v in visible):
            continue
        visible = [v & ~shape for v in visible]
        visible.append(shape)
        labels.append(label)
        colours.append(rng.uniform(0, 255, size=3))
    for shape, colour in zip(_paint_order(visible), colours, strict=True):
        shade = colour[:, None, None] + rng.normal(0, config.noise / 2, size=(3, size, size))
        img = np.where(shape[None], shade, img)
    image = torch.from_numpy(np.clip(img, 0, 255).round().astype(np.uint8))
    masks = (
        torch.from_numpy(np.stack(visible))
        if visible
        else torch.zeros((0, size, size), dtype=torch.bool)
    )
    boxes = torch.zeros((len(visible), 4), dtype=torch.float32)
    for i, m in enumerate(visible):
        ys, xs = np.nonzero(m)
        boxes[i] = torch.tensor(
            [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32
        )
    semantic = torch.zeros((size, size), dtype=torch.int64)
    for i, label in enumerate(labels):
        semantic[masks[i]] = label + 1
    return ShapesScene(image, boxes, torch.tensor(labels, dtype=torch.int64), masks, semantic)


def _paint_order(visible: list[np.ndarray]) -> list[np.ndarray]:
    # Visible parts are disjoint, so painting them in any order gives the occluded scene.
    return visible

"""Explanation files: overlay PNGs, raw `.npy` maps, each map's scores, `faithfulness.json` and the report section.

For image `stem`, target `k` and method `m` the files are
`stem.k.m.png` (the map in a jet colour scale over the image, the target's
box drawn for detection), `stem.k.m.npy` (the (H, W) float32 map in [0, 1]
at the model's input size) and `stem.k.m.json` (the target, the method,
its deletion and insertion AUC and the random map's).  Every file is
written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from recog.explain.explainer import Explanation
from recog.io import atomic_write_bytes, atomic_write_text


def overlay(image: torch.Tensor, saliency: np.ndarray, *, box: torch.Tensor | None = None):
    """uint8 (3, H, W) image with the map blended over it (PIL image)."""
    from matplotlib import colormaps

    rgb = image.permute(1, 2, 0).cpu().numpy().astype(np.float32) / 255.0
    heat = colormaps["jet"](saliency)[..., :3]
    blended = (0.5 * rgb + 0.5 * heat).clip(0, 1)
    out = Image.fromarray((blended * 255).round().astype(np.uint8))
    if box is not None:
        ImageDraw.Draw(out).rectangle([float(v) for v in box], outline=(255, 255, 255), width=2)
    return out


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def unique_stems(names: Sequence[str]) -> list[str]:
    """File stems for image names, numbered where two would collide (a/x.jpg, b/x.jpg)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        stem = Path(name).stem or "image"
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        out.append(stem if n == 0 else f"{stem}-{n + 1}")
    return out


def save_explanation(
    save_dir: Path, stem: str, index: int, image: torch.Tensor, e: Explanation
) -> list[Path]:
    base = save_dir / f"{stem}.{index}.{e.method}"
    png, npy, meta = (base.with_name(base.name + ext) for ext in (".png", ".npy", ".json"))
    atomic_write_bytes(png, _png(overlay(image, e.saliency, box=e.target.box)))
    buf = io.BytesIO()
    np.save(buf, e.saliency.astype(np.float32), allow_pickle=False)
    atomic_write_bytes(npy, buf.getvalue())
    record = {
        "image": e.image,
        "target": e.target.name,
        "label": e.target.label,
        "box": None if e.target.box is None else [float(v) for v in e.target.box],
        "method": e.method,
        **{k: round(v, 6) for k, v in e.scores.items()},
    }
    atomic_write_text(meta, json.dumps(record, indent=1))
    return [png, npy, meta]


def write_faithfulness(save_dir: Path, table: dict[str, dict[str, float]], info: dict) -> Path:
    path = save_dir / "faithfulness.json"
    atomic_write_text(path, json.dumps({**table, "_info": info}, indent=2))
    return path


def report_section(
    table: dict[str, dict[str, float]],
    examples: Sequence[tuple[torch.Tensor, Explanation]],
    info: dict,
) -> str:
    """The report's explanations section: the ranking table and a few maps with their scores."""
    esc = html.escape
    rows = []
    for rank, (method, row) in enumerate(table.items(), start=1):
        rho = row.get("randomization_spearman")
        cells = [
            str(rank),
            esc(method),
            f"{row['deletion_auc']:.4f}",
            f"{row['insertion_auc']:.4f}",
            "-" if rho is None or rho != rho else f"{rho:.3f}",
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in ("rank", "method", "deletion AUC ↓", "insertion AUC ↑", "randomization ρ ↓")
    )
    figures = []
    for image, e in examples:
        data = base64.b64encode(_png(overlay(image, e.saliency, box=e.target.box))).decode()
        caption = (
            f"{e.method} on {e.target.name}: deletion {e.scores['deletion_auc']:.3f}, "
            f"insertion {e.scores['insertion_auc']:.3f}"
        )
        figures.append(
            f'<figure style="display:inline-block;margin:4px"><img src="data:image/png;base64,'
            f'{data}" width="160" alt="{esc(e.method)}"><figcaption>{esc(caption)}</figcaption>'
            "</figure>"
        )
    note = (
        f'<p class="muted">{info.get("images", 0)} images of {esc(str(info.get("data", "")))}, '
        f"{info.get('steps', 0)} steps per curve; randomization: {info.get('levels', 0)} cumulative "
        "re-initializations from the output layer back.</p>"
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{note}{''.join(figures)}"

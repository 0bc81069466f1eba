"""How every report figure becomes a PNG file: `save_figure`.

Figures are built as `matplotlib.figure.Figure` directly (no pyplot, so no
global figure registry and no GUI backend), rendered to memory with the Agg
canvas and written atomically, so a report never links a half-written image.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from recog.io import atomic_write_bytes

DPI = 100


def save_figure(fig: Figure, out: Path) -> Path:
    """Render `fig` as PNG at `out` (atomically) and free it; returns `out`."""
    out = Path(out)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    fig.clear()
    atomic_write_bytes(out, buf.getvalue())
    return out


def unit_axes(ax: Any, *, xlabel: str, ylabel: str, title: str) -> None:
    """A curve of fractions against fractions: both axes 0..1, labelled, gridded, a legend."""
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)

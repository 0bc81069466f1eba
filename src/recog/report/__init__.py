"""Report outputs: PNG plots (`plots`) and the single-file HTML report (`html`).

The names are re-exported lazily, so importing `recog.report` (or
`recog.report.run_outputs`) does not pull in matplotlib until a plot is drawn.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recog.report.html import write_report
    from recog.report.plots import plot_confusion, plot_curves, plot_sample_grid

__all__ = ["plot_confusion", "plot_curves", "plot_sample_grid", "write_report"]

_HOMES = {
    "plot_confusion": "recog.report.plots",
    "plot_curves": "recog.report.plots",
    "plot_sample_grid": "recog.report.plots",
    "write_report": "recog.report.html",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'recog.report' has no attribute {name!r}")

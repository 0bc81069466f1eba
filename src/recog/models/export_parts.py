"""Where a model's export ends: `ExportParts`, the tensor-only part of a model and the step after it.

Models own this (a model knows which of its parts are tensor-to-tensor); `recog.deploy`
puts the run's preprocessing in front and turns it into a file.  A model without an
`export_parts()` method exports its whole forward as `logits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from recog.errors import RecogError


@dataclass
class ExportParts:
    """A model cut where its export ends: `module` maps normalized images to `outputs`."""

    module: nn.Module
    outputs: tuple[str, ...] = ("logits",)
    #: what runs after the graph to give the torch model's answer: "tensor" (nothing) or "nms"
    finish: str = "tensor"
    finish_args: dict[str, Any] = field(default_factory=dict)


def export_parts(model: nn.Module, name: str) -> ExportParts:
    """The model's export cut: its own `export_parts()`, else the whole forward."""
    own = getattr(model, "export_parts", None)
    if own is None:
        return ExportParts(module=model)
    parts = own()
    if parts is None:
        raise RecogError(f"{name}: this model cannot be exported yet")
    return parts

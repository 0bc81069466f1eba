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
    #: what runs after the graph to give the torch model's answer: "tensor" (nothing), "nms"
    #: (boxes and class scores of a batch -> per-image detections), or "detections" (the
    #: outputs are already one image's answer, named as its keys)
    finish: str = "tensor"
    finish_args: dict[str, Any] = field(default_factory=dict)
    #: which torch.onnx exporter writes it: "dynamo" (torch.export) or "torchscript" (the
    #: tracing exporter, for graphs whose sizes depend on the data: `recog.models.detect`)
    exporter: str = "dynamo"
    #: the graph takes one image (batch 1); the runtime runs a batch image by image
    per_image: bool = False


def export_parts(model: nn.Module, name: str) -> ExportParts:
    """The model's export cut: its own `export_parts()`, else the whole forward."""
    own = getattr(model, "export_parts", None)
    if own is None:
        return ExportParts(module=model)
    parts = own()
    if parts is None:
        raise RecogError(f"{name}: this model cannot be exported yet")
    return parts

"""recog: deep-learning image recognition end to end.

import recog
rec = recog.train("digits", "cnn", epochs=15)
rec = recog.load("runs/classify/digits-cnn")
rec.predict("photos/")

The names below are imported on first use (PEP 562): `import recog` alone, as
`recog --help` does on its way to `recog.cli`, imports no torch.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

# OpenMP threads that wait by spinning hold up every barrier when another process takes one
# of their cores: a 2-thread run beside one busy process trained 3-14x slower than alone,
# where sleeping waiters train at one core's speed (bench/shared_cores.py, docs/training.md).
# libgomp reads this when torch loads, so only when recog is imported first; a value the
# user set is kept.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from recog.errors import RecogError
from recog.version import __version__

if TYPE_CHECKING:
    from recog.api import Recognizer, load, train
    from recog.api.results import Result, coco_ids, to_coco, to_df
    from recog.config import TrainConfig, TrainRequest
    from recog.models.factory import create_model, list_models

#: public name -> the module that defines it
_LAZY = {
    "Recognizer": "recog.api",
    "load": "recog.api",
    "train": "recog.api",
    "Result": "recog.api.results",
    "to_coco": "recog.api.results",
    "coco_ids": "recog.api.results",
    "to_df": "recog.api.results",
    "TrainConfig": "recog.config",
    "TrainRequest": "recog.config",
    "create_model": "recog.models.factory",
    "list_models": "recog.models.factory",
}

__all__ = [
    "Recognizer",
    "RecogError",
    "Result",
    "TrainConfig",
    "TrainRequest",
    "coco_ids",
    "create_model",
    "list_models",
    "load",
    "to_coco",
    "to_df",
    "train",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:  # a subpackage reached as an attribute (`recog.api` after `import recog`)
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # the submodule exists; something it imports is missing
            raise AttributeError(f"module 'recog' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

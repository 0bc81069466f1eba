"""The Python API and what every CLI subcommand calls: `train`, `load`, `Recognizer`.

`train` (`recog.api.training`) resolves a `TrainConfig`, runs the engine and writes
the run directory.  `load` and `Recognizer` (`recog.api.recognizer`) rebuild a
trained run from its directory alone and predict, evaluate and export with it.
What the API accepts as images is `recog.api.images`; the Recognizer's trust
methods (explain, calibrate, OOD) are `recog.api.trust`.
"""

from __future__ import annotations

from recog.api.recognizer import Recognizer, load
from recog.api.runs import (  # noqa: F401  (the API's names)
    CONFIG_NAME,
    LABELS_NAME,
    RUN_OUTPUTS,
    build_model,
    build_task,
)
from recog.api.training import train
from recog.resolve import infer_task, resolve_config  # noqa: F401  (the API's names)

__all__ = ["Recognizer", "load", "train"]

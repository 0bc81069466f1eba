"""recog: deep-learning image recognition end to end.

import recog
rec = recog.train("digits", "cnn", epochs=15)
rec = recog.load("runs/classify/digits-cnn")
rec.predict("photos/")
"""

from recog.api import Recognizer, load, train
from recog.api.results import Result, to_coco, to_df
from recog.config import TrainConfig
from recog.errors import RecogError
from recog.models.factory import create_model, list_models
from recog.version import __version__

__all__ = [
    "Recognizer",
    "RecogError",
    "Result",
    "TrainConfig",
    "create_model",
    "list_models",
    "load",
    "to_coco",
    "to_df",
    "train",
    "__version__",
]

"""Explanations: saliency maps for every task, and how faithful each method is to the model.

`Explainer` (explainer.py) makes maps through the Task seam; `methods.py`
holds the methods (pytorch-grad-cam, Captum, D-RISE, random);
`faithfulness.py` scores them; `output.py` writes the files.
`recog.api.Recognizer.explain` / `score_explanations` and `recog explain`
are the ways in.
"""

from recog.explain.explainer import Explainer, Explanation
from recog.explain.methods import METHODS

__all__ = ["METHODS", "Explainer", "Explanation"]

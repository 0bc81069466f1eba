"""The data doctor: what is wrong with a dataset, for every task, and a cleaned copy.

`diagnose` (`recog data doctor PATH [--run RUN] [--out DIR] [--fix DIR]`) reads
a dataset the way training would (`facet`: what each task's data gives the
doctor) and reports exact and near duplicates with leaks across train/val
first (`duplicates`), likely label errors (`label_errors`, on out-of-fold
probabilities or a run's predictions from `evidence`), the annotations' own
problems and odd images (`images`), as
`doctor.json` and a one-page `doctor.html` (`page`).  `--fix` writes a
cleaned copy and the log of each change; the original is never written to.
It sits beside `serve/` and `batch/`: it loads a run through `recog.api`.
"""

from recog.doctor.diagnose import Diagnosis, diagnose
from recog.doctor.page import KINDS

__all__ = ["KINDS", "Diagnosis", "diagnose"]

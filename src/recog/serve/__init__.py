"""Serving: the REST API, micro-batcher, history store and web page behind `recog serve`.

`serve(runs, ...)` loads run directories and runs the app under uvicorn;
`create_app` builds the FastAPI app around loaded recognizers (tests use it
directly); `export_feedback` turns user corrections into a training set.
The FastAPI and SQLAlchemy imports stay inside this package, so the rest of
recog works without them.
"""

from __future__ import annotations

from recog.serve.app import ServeConfig, create_app
from recog.serve.export import export_feedback
from recog.serve.limits import Limits
from recog.serve.runner import serve

__all__ = ["Limits", "ServeConfig", "create_app", "export_feedback", "serve"]

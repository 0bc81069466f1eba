"""Batch prediction at scale: `recog predict --out` streaming on this machine, and on a
Ray cluster with `--engine ray`.

`sources` lists and reads the inputs (files, folders, globs, manifests, fsspec
URLs), `reader` decodes them in worker processes, `rows` is the one output table,
`writer` the resumable Parquet and JSON-lines sinks, `stream` the local engine and
`ray_engine` the same job through Ray Data.  Above `api` (it drives a
`Recognizer`), beside `serve`.
"""

from recog.batch.sources import list_inputs, read_input
from recog.batch.stream import StreamSummary, job_settings, predict_stream
from recog.batch.writer import open_sink

__all__ = [
    "StreamSummary",
    "job_settings",
    "list_inputs",
    "open_sink",
    "predict_stream",
    "read_input",
]

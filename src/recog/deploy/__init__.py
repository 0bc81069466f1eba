"""Deployment: exported files (ONNX, OpenVINO IR) with their parity check, int8, runtimes, benchmarks.

Layers: `graph` (what the file computes, and `TrainedRun`, what deployment reads of a run), `export` (writing it), `backend` (running
it behind the torch model's interface), `quantize` (int8), `parity` (the check after
every export), `run` (the `recog export` pipeline), `bench` (`recog bench`).  Loading a
file as a `Recognizer` is `recog.api.exported`.
"""

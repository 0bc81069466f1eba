"""`recog predict --engine ray`: the same job and table as the local engine, through Ray Data.

Ray Data is the field's engine for batch inference on a cluster: a dataset of
input names flows through `map_batches` into a pool of `_Predictor` actors, each
loading the Recognizer once from the run directory (`recog.api.load`) and then
reading, decoding and predicting batch after batch; Ray schedules the actors
over the cluster's machines, streams blocks between them and holds back
the input when the actors fall behind (backpressure), and `write_parquet`
writes one file per block into the `--out` folder, in the schema of
`recog.batch.rows` (a folder of Parquet files reads as one table:
`pyarrow.parquet.read_table(out)`, pandas, DuckDB, Spark).

Order is kept (`preserve_order`), so the rows come out as the inputs went in.
With no `--ray-address` a local cluster is started on this machine with all its
cores.  The run directory must be at the same path on every node (a shared file
system), as must local inputs; fsspec URLs (`s3://...`) need nothing shared.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from recog.batch.plan import cores
from recog.batch.rows import SCHEMA, to_table
from recog.batch.sources import list_inputs
from recog.batch.stream import MAX_WARNINGS, StreamSummary, job_settings, predict_rows
from recog.batch.writer import PART_ROWS
from recog.console import console, warn
from recog.errors import RecogError


class _Predictor:
    """One Ray actor: a Recognizer loaded once, then a batch of input names at a time."""

    def __init__(self, run_dir: str, device: str, backend: str, top_k: int, reject: bool,
                 threads: int, selection: dict[str, Any] | None = None):  # fmt: skip
        import torch

        from recog import api
        from recog.types import Selection

        torch.set_num_threads(max(1, threads))
        self.rec = api.load(run_dir, device=device, backend=backend)
        self.rec.selection = Selection(**(selection or {}))
        self.top_k, self.reject = top_k, reject

    def __call__(self, batch: dict[str, Any]) -> Any:
        import torch

        from recog.batch.reader import PreparedImages, collate

        images = PreparedImages([str(p) for p in batch["path"]], self.rec.task)
        prepared = collate([images[i] for i in range(len(images))])
        with torch.inference_mode():
            rows, _ = predict_rows(self.rec, prepared, top_k=self.top_k, reject=self.reject)
        return to_table(rows)


def _init_ray(address: str | None) -> Any:
    try:
        import ray
    except ImportError:
        raise RecogError("--engine ray needs Ray: pip install 'recog[ray]'") from None
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, logging_level="ERROR", log_to_driver=False)
            else:
                ray.init(num_cpus=cores(), include_dashboard=False,
                         logging_level="ERROR", log_to_driver=False)  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or "a local cluster"
            raise RecogError(f"Ray at {where}: cannot start ({str(exc).splitlines()[0]})") from None
    return ray


def predict_ray(
    run_dir: Path, paths: list[str], out: Path, *, batch_size: int, top_k: int, reject: bool,
    num_workers: int, address: str | None = None, device: str = "cpu", backend: str = "torch",
    selection: dict[str, Any] | None = None,
) -> StreamSummary:  # fmt: skip
    """Predict every input on Ray Data; `out` becomes a folder of Parquet files; `selection`
    the `Recognizer.predict` keywords conf, iou, max_det."""
    import pyarrow.parquet as pq

    from recog import api
    from recog.types import Selection

    out = Path(out)
    if out.exists():
        raise RecogError(f"{out}: already there (from an earlier job); choose another --out")
    if not out.parent.is_dir():
        raise RecogError(f"{out.parent}: no such directory for --out")
    # a run that cannot load fails here, in one line, not in every actor
    rec = api.load(run_dir, device="cpu", backend=backend)
    rec.selection = Selection(**(selection or {}))
    rec.task.check_selection(rec.selection)
    settings = job_settings(rec, top_k=top_k, batch_size=batch_size, reject=reject)
    del rec
    inputs = list_inputs(paths)
    ray = _init_ray(address)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    if not console().is_terminal:  # Ray's progress blocks every few seconds flood a log
        ctx.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    start = time.perf_counter()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    threads = max(1, cpus // max(1, num_workers)) if not address else 1
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # blocks of about PART_ROWS names (at least two per actor, so none idles): Ray's default
    # of 200 tiny blocks wrote 50 Parquet files of 40 rows for 2,000 images (measured)
    blocks = max(2 * num_workers, math.ceil(len(inputs) / PART_ROWS))
    ds = ray.data.from_items([{"path": p} for p in inputs], override_num_blocks=blocks)
    ds = ds.map_batches(
        _Predictor,
        fn_constructor_kwargs={
            "run_dir": settings["run"],
            "device": device,
            "backend": backend,
            "top_k": top_k,
            "reject": reject,
            "threads": threads,
            "selection": selection,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=num_workers),
        num_cpus=1,
    )
    try:
        # writing is light: a tenth of a CPU each, or the actors (a CPU each) starve it
        ds.write_parquet(str(tmp), schema=SCHEMA, ray_remote_args={"num_cpus": 0.1})
    except Exception as exc:  # noqa: BLE001 - Ray wraps a worker's failure in its own types
        shutil.rmtree(tmp, ignore_errors=True)
        raise RecogError(f"Ray job failed: {str(exc).splitlines()[0][:300]}") from None
    os.replace(tmp, out)
    seconds = time.perf_counter() - start
    errors = pq.read_table(out, columns=["error"]).column("error").drop_null()
    for line in errors.to_pylist()[:MAX_WARNINGS]:
        warn(line)
    return StreamSummary(len(inputs), 0, len(errors), seconds)

"""Experiment trackers (`--log tensorboard,mlflow`): the run's config, each epoch's row, and its files.

A `Tracker` hears three things: `start(config)` once the run's config is
resolved, `log_epoch(row)` with each row of results.csv (the same flat names,
step = epoch), and `finish(metrics)` once metrics.json, plots/ and
report.html are written (or `fail()` when training raised).  The trainer calls
`log_epoch` only; `recog.api.train` the rest, on rank 0 alone.

- TensorBoard: event files in `RUN/tensorboard/`, one scalar per column per
  epoch, and at the end the config's scalar values as hparams beside the final
  metrics (`torch.utils.tensorboard`, so the tensorboard package).
- MLflow: the tracking URI is `--log-uri`, else `MLFLOW_TRACKING_URI`, else a
  local SQLite store beside the run: `RUN/../mlflow.db`, artifacts in
  `RUN/../mlartifacts/` (MLflow 3 refuses its old `./mlruns` file store, and a
  store shared by the runs in one folder is what lets `mlflow ui` compare them).
  The resolved URI is recorded in config.yaml (`log_uri`).  The experiment is
  `recog-<task>`, the run is named after the run directory and tagged with its
  path, so `--resume` continues the same MLflow run.  Parameters: the resolved
  config (nested values flattened as `model_args.width`); metrics: each epoch's
  row and the final metrics; artifacts: the whole run directory.

mlflow and tensorboard are optional (`pip install 'recog[mlflow]'`,
`'recog[tensorboard]'`) and imported only here, inside the trackers;
`check_log` says which is missing before anything is trained.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import urllib.parse
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from recog.errors import RecogError

#: --log value -> (the package it needs, its extra)
_NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
#: the config value of log_uri that means "MLFLOW_TRACKING_URI, else the local store"
AUTO = "auto"
#: MLflow 3 caps a parameter value at 6,000 characters; config.yaml (an artifact) keeps all
_PARAM_CHARS = 6000
TAG_RUN_DIR = "recog.run_dir"
#: the stores MLflow's tracking client opens (mlflow.tracking._tracking_service.utils)
_STORE_SCHEMES = frozenset(
    {"sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc"}
)
#: seconds a tracking server has to accept a connection before the run is refused
_CONNECT_TIMEOUT_S = 3.0


class Tracker(Protocol):
    def start(self, config: dict[str, Any]) -> None: ...
    def log_epoch(self, row: dict[str, Any]) -> None: ...
    def finish(self, metrics: dict[str, Any]) -> None: ...
    def fail(self) -> None: ...


def log_targets(log: str) -> list[str]:
    """The trackers `log` ("none", "tensorboard", "mlflow,tensorboard") names."""
    return [] if log == "none" else [name.strip() for name in log.split(",")]


def check_log(log: str, log_uri: str) -> None:
    """RecogError when a tracker's package is missing, or `log_uri` is set without mlflow."""
    names = log_targets(log)
    if log_uri not in (AUTO, "none") and "mlflow" not in names:
        raise RecogError(f"--log-uri {log_uri}: only with --log mlflow")
    for name in names:
        package, extra = _NEEDS[name]
        if importlib.util.find_spec(package) is None:
            raise RecogError(
                f"--log {name}: the {package} package is not installed (pip install 'recog[{extra}]')"
            )
    if "mlflow" in names:
        if log_uri not in (AUTO, "none"):
            check_store(log_uri, f"--log-uri {log_uri}")
        elif os.environ.get("MLFLOW_TRACKING_URI"):
            uri = os.environ["MLFLOW_TRACKING_URI"]
            check_store(uri, f"MLFLOW_TRACKING_URI={uri}")


def check_store(uri: str, where: str) -> None:
    """RecogError (naming `where`) unless `uri` is a tracking store MLflow can open now.

    Checked once before anything is trained: MLflow itself fails only once the run
    is under way, and against a server that refuses connections it retries for
    minutes (issue 33: `http://127.0.0.1:9` hung the run).
    """
    scheme = urllib.parse.urlsplit(uri).scheme.split("+")[0]  # postgresql+psycopg2
    if scheme in ("", "file"):
        # MLflow 3 refuses its file store (maintenance mode) unless told otherwise
        raise RecogError(f"{where}: MLflow's file store is retired; use sqlite:///PATH/mlflow.db")
    if scheme == "sqlite":
        path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else ""
        if path and path != ":memory:" and not Path(path).parent.is_dir():
            # never created for the user: a typo would leave folders anywhere
            raise RecogError(f"{where}: the folder {Path(path).parent} does not exist")
    elif scheme in ("http", "https"):
        _reachable(uri, where)
    elif scheme not in _STORE_SCHEMES:
        raise RecogError(
            f"{where}: not a tracking URI MLflow knows (sqlite:///PATH, http(s)://HOST, "
            f"{', '.join(s + '://' for s in sorted(_STORE_SCHEMES - {'sqlite', 'http', 'https'}))})"
        )


def _reachable(uri: str, where: str) -> None:
    """A plain TCP connect to the server, with a short timeout (MLflow's own client retries)."""
    parts = urllib.parse.urlsplit(uri)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RecogError(f"{where}: not a valid port") from None
    if not parts.hostname:
        raise RecogError(f"{where}: names no server")
    try:
        socket.create_connection((parts.hostname, port), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RecogError(
            f"{where}: no MLflow server answers at {parts.hostname}:{port} ({reason})"
        ) from None


def tracking_uri(log: str, log_uri: str, run_dir: Path) -> str:
    """What `log_uri` resolves to for a run in `run_dir` ("none" without mlflow)."""
    if "mlflow" not in log_targets(log):
        return "none"
    if log_uri not in (AUTO, "none"):
        return log_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(run_dir.parent / 'mlflow.db').resolve()}"


def open_tracker(log: str, uri: str, run_dir: Path, *, task: str) -> Trackers:
    """The trackers `log` names, for the run in `run_dir` (nothing is opened for "none")."""
    names = log_targets(log)
    return Trackers(
        ([TensorBoardTracker(run_dir)] if "tensorboard" in names else [])
        + ([MlflowTracker(uri, run_dir, task=task)] if "mlflow" in names else [])
    )


class Trackers:
    """Several trackers heard as one (none at all for `--log none`)."""

    def __init__(self, trackers: Iterable[Tracker]) -> None:
        self.trackers = list(trackers)

    def start(self, config: dict[str, Any]) -> None:
        for t in self.trackers:
            t.start(config)

    def log_epoch(self, row: dict[str, Any]) -> None:
        for t in self.trackers:
            t.log_epoch(row)

    def finish(self, metrics: dict[str, Any]) -> None:
        for t in self.trackers:
            t.finish(metrics)

    def fail(self) -> None:
        for t in self.trackers:
            t.fail()


def scalars(values: dict[str, Any]) -> dict[str, float]:
    """The numeric values of a row or of metrics.json (not `per_class`, not booleans)."""
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"model_args": {"width": 64}}` -> `{"model_args.width": "64"}`, values as text."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            out[prefix + key] = text[:_PARAM_CHARS]
    return out


class TensorBoardTracker:
    """Event files in RUN/tensorboard/: scalars per epoch, hparams at the end."""

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.dir = run_dir / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.dir))
        self.config: dict[str, Any] = {}

    def start(self, config: dict[str, Any]) -> None:
        self.config = config
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.items()))

    def log_epoch(self, row: dict[str, Any]) -> None:
        step = int(row["epoch"])
        for key, value in scalars(row).items():
            if key != "epoch":
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(self, metrics: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        params = {
            k: v
            for k, v in flat_params(self.config).items()
            if k not in ("versions",) and not k.startswith("versions.")
        }
        final = {f"final/{k}": v for k, v in scalars(metrics).items()}
        # written into this run's own event file (add_hparams would open a sub-run)
        for summary in hparams(params, final):
            self.writer.file_writer.add_summary(summary)
        for key, value in final.items():
            self.writer.add_scalar(key, value)
        self.writer.close()

    def fail(self) -> None:
        self.writer.close()


class MlflowTracker:
    """One MLflow run per run directory: params, per-epoch metrics, the run's files."""

    def __init__(self, uri: str, run_dir: Path, *, task: str) -> None:
        # its SQLAlchemy models raise a deprecation warning, and mlflow announces its
        # database migrations at INFO on stderr (its import sets that level): neither is
        # the user's business
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mlflow.tracking import MlflowClient

            logging.getLogger("mlflow").setLevel(logging.WARNING)

            from mlflow.exceptions import MlflowException

            self.uri, self.run_dir = uri, run_dir
            try:
                self.client = MlflowClient(tracking_uri=uri)
                self.run_id, self.resumed = self._open(f"recog-{task}")
            except MlflowException as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise RecogError(f"--log-uri {uri}: {first}") from exc

    def _open(self, experiment: str) -> tuple[str, bool]:
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            exp_id = found.experiment_id
        else:
            # a SQLite store keeps its artifacts beside it (MLflow's default is ./mlartifacts
            # of whatever folder the command ran in); a server chooses its own
            local = self.uri.startswith("sqlite:///")
            where = Path(self.uri[len("sqlite:///") :]).parent / "mlartifacts" if local else None
            exp_id = self.client.create_experiment(
                experiment, artifact_location=where.as_uri() if where else None
            )
        tag = str(self.run_dir.resolve())
        runs = self.client.search_runs(
            [exp_id], filter_string=f"tags.`{TAG_RUN_DIR}` = '{tag}'", max_results=1
        )
        if runs:
            self.client.update_run(runs[0].info.run_id, status="RUNNING")
            return runs[0].info.run_id, True
        run = self.client.create_run(exp_id, run_name=self.run_dir.name, tags={TAG_RUN_DIR: tag})
        return run.info.run_id, False

    def start(self, config: dict[str, Any]) -> None:
        if self.resumed:  # MLflow parameters cannot change; the first start logged them
            return
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flat_params(config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log_epoch(self, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        step = int(row["epoch"])
        stamp = _millis()
        metrics = [Metric(k, v, stamp, step) for k, v in scalars(row).items() if k != "epoch"]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, metrics: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        stamp = _millis()
        final = [Metric(f"final/{k}", v, stamp, 0) for k, v in scalars(metrics).items()]
        self.client.log_batch(self.run_id, metrics=final)
        self.client.log_artifacts(self.run_id, str(self.run_dir))
        self.client.set_terminated(self.run_id, status="FINISHED")

    def fail(self) -> None:
        self.client.set_terminated(self.run_id, status="FAILED")


def _millis() -> int:
    import time

    return int(time.time() * 1000)

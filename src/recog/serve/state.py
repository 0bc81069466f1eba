"""What one app serves and every route shares: its settings, its models, its history store.

`ServeConfig` is what `recog serve` sets; `ServedModel` is one loaded run with
its micro-batcher and its `/v1/models` entry; `Serving` is the whole of one
app's state, kept on `app.state.recog` and handed to a route by the
`ServingDep` dependency (no module-level state: two apps in one process
never share a model, a queue or a store).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from recog.api import Recognizer
from recog.serve.batcher import MicroBatcher
from recog.serve.limits import Limits
from recog.serve.metrics import ServerMetrics
from recog.serve.schemas import ModelInfo
from recog.serve.store import DEFAULT_DB_URL, Store
from recog.serve.worker import HeavyGate


@dataclass(frozen=True)
class ServeConfig:
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 256
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    keep_images: bool = False
    db_url: str = DEFAULT_DB_URL
    #: history rows held in memory while the database is slow or down; past it they are dropped
    history_queue: int = 10_000
    limits: Limits = field(default_factory=Limits)
    warm_up: bool = True
    #: `recog serve --conf --iou --max-det`: what a request that names none keeps
    #: (`Recognizer.predict`'s keywords; unset: each task's defaults)
    selection: dict[str, Any] = field(default_factory=dict)
    #: `recog serve --camera-history`: write every answered camera frame to the history (off:
    #: a minute of camera is thousands of rows; the session's counts go to /metrics and the log)
    camera_history: bool = False


@dataclass
class ServedModel:
    name: str
    recognizer: Recognizer
    batcher: MicroBatcher
    info: ModelInfo
    #: the model's copy that explanations hook into (made on the first /v1/explain), so
    #: their hooks and gradients never touch the batcher's forward passes
    explainer: Recognizer | None = None
    explain_lock: threading.Lock = field(default_factory=threading.Lock)

    def explaining(self) -> Recognizer:
        """The explanation copy of the recognizer (call under `explain_lock`)."""
        self.recognizer.require_torch("explanations and attacks")  # an exported file has no copy
        if self.explainer is None:
            import copy

            rec = copy.copy(self.recognizer)
            rec.model = copy.deepcopy(self.recognizer.model).eval()
            self.explainer = rec
        return self.explainer


@dataclass
class Serving:
    """One app's state: `models` in the order served (the first is the default)."""

    config: ServeConfig
    models: dict[str, ServedModel]
    store: Store
    metrics: ServerMetrics
    #: the explanations and attacks running now, of every model (`Limits.heavy_slots`)
    heavy: HeavyGate = field(init=False)

    def __post_init__(self) -> None:
        limits = self.config.limits
        self.heavy = HeavyGate(limits.heavy_slots, limits.heavy_wait_s)

    @property
    def default_model(self) -> str:
        return next(iter(self.models))

    def served(self, name: str | None) -> tuple[str, ServedModel]:
        """The model a request names (None: the default), or a 404 listing the served ones."""
        from recog.serve.errors import ApiError

        name = self.default_model if name is None else name
        if name not in self.models:
            raise ApiError(
                404, "unknown_model", f"no model {name!r}; served: {', '.join(self.models)}"
            )
        return name, self.models[name]


def serving(request: Request) -> Serving:
    return request.app.state.recog  # type: ignore[no-any-return]


#: a route's parameter for the app's state: `state: ServingDep`
ServingDep = Annotated[Serving, Depends(serving)]


def unique_names(recognizers: list[Recognizer]) -> dict[str, Recognizer]:
    """Model names users type: the run directory's name, made unique with its parent's."""
    out: dict[str, Recognizer] = {}
    for rec in recognizers:
        name = rec.run_dir.name
        if name in out:
            name = f"{rec.run_dir.parent.name}-{name}"
        base, n = name, 1
        while name in out:
            n += 1
            name = f"{base}-{n}"
        out[name] = rec
    return out

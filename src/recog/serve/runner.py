"""`recog serve`: load run directories and run the app under uvicorn."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from recog.serve.app import create_app
from recog.serve.state import ServeConfig, unique_names


def serve(
    runs: Sequence[str | Path],
    config: ServeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "auto",
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve `runs` until interrupted (blocks)."""
    import uvicorn

    from recog.api import load

    recognizers = unique_names([load(run, device=device) for run in runs])
    app = create_app(recognizers, config)
    logging.getLogger("recog.serve").setLevel(log_level.upper())
    for name, rec in recognizers.items():
        print(
            f"serving {name}: {rec.config.task} {rec.config.model}, {len(rec.class_names)} classes"
        )
    print(f"history: {config.db_url}{' (with images)' if config.keep_images else ''}")
    print(f"page: http://{host}:{port}/  API: http://{host}:{port}/v1/  schema: /openapi.json")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        # bounded work in flight: past this many connections uvicorn answers 503
        limit_concurrency=1024,
        timeout_keep_alive=5,
        server_header=False,
    )

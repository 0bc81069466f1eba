"""`recog serve`: load run directories and run the app under uvicorn.

What a user typed is checked before anything slow starts: the port and host
(a free port that can be bound), the history store's URL (the store is
opened first), then the runs are loaded.  Each mistake is one `RecogError`
line, not a uvicorn traceback.  On SIGTERM or Ctrl-C uvicorn stops
accepting connections and waits for the requests it has accepted: each of
them is still batched, answered and recorded before the store is closed.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Sequence
from pathlib import Path

from recog.errors import RecogError
from recog.serve.app import create_app
from recog.serve.state import ServeConfig, unique_names
from recog.serve.store import Store


def check_address(host: str, port: int) -> None:
    """A RecogError unless `host:port` is a port number that this process can listen on now."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise RecogError(f"--port {port}: not a port number (0-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise RecogError(f"--host {host}: not an address of this machine ({exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            why = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise RecogError(f"--host {host} --port {port}: cannot listen there ({why})") from None


def serve(
    runs: Sequence[str | Path],
    config: ServeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "auto",
    backend: str = "torch",
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve `runs` until interrupted (blocks)."""
    import uvicorn

    from recog.api import load

    check_address(host, port)
    store = Store(config.db_url, queue=config.history_queue)
    try:
        recognizers = unique_names([load(run, device=device, backend=backend) for run in runs])
        app = create_app(recognizers, config, store=store, close_store=True)
        logging.getLogger("recog.serve").setLevel(log_level.upper())
        for name, rec in recognizers.items():
            print(
                f"serving {name}: {rec.config.task} {rec.config.model}, "
                f"{len(rec.class_names)} classes"
            )
        print(f"history: {store.shown}{' (with images)' if config.keep_images else ''}")
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
    finally:
        store.close()

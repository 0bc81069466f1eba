"""What `recog serve` is handed that is wrong, and what it survives: a bad --db or --port,
a bug in a route, a body nested 100,000 deep, a SIGTERM under load."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serving import digit_png, free_port, live_server

from recog import cli


def _serve(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["serve", *args])
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("recog: error: "), err
    return err


@pytest.fixture
def no_uvicorn(monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("uvicorn must not start"))


# ------------------------------------------------------------------ what the user typed
@pytest.mark.parametrize(
    "db, says",
    [
        ("notaurl", "history store 'notaurl': not a database URL"),
        ("nosuchdb://host/x", "history store 'nosuchdb://host/x': unknown kind of database"),
        (
            "postgresql://me:hunter2@localhost/x",
            "history store 'postgresql://me:***@localhost/x': ",
        ),
        (  # a PostgreSQL that does not answer at start: said at once, not retried forever
            "postgresql://me:hunter2@127.0.0.1:9/x",
            "history store 'postgresql://me:***@127.0.0.1:9/x': cannot open it (",
        ),
        ("sqlite:////no/such/dir/h.db", "history store 'sqlite:////no/such/dir/h.db': cannot open"),
    ],
)
def test_a_bad_db_url_is_one_line_before_the_server_starts(runs, capsys, no_uvicorn, db, says):
    code, err = _serve(capsys, str(runs["classify"]), "--db", db, "--port", str(free_port()))
    assert code == 2
    assert says in _one_line(err)
    assert "hunter2" not in err


def test_postgresql_without_psycopg_says_how_to_install_it(runs, capsys, no_uvicorn, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` raises ImportError
    db = "postgresql://me:hunter2@localhost/x"
    code, err = _serve(capsys, str(runs["classify"]), "--db", db, "--port", str(free_port()))
    assert code == 2
    assert "PostgreSQL needs psycopg 3 (pip install 'recog[postgres]')" in _one_line(err)
    assert "hunter2" not in err


def test_a_history_queue_of_zero_is_one_line(runs, capsys, no_uvicorn):
    code, err = _serve(capsys, str(runs["classify"]), "--history-queue", "0")
    assert code == 2
    assert "--history-queue 0: must be at least 1" in _one_line(err)


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_a_port_out_of_range_is_one_line(runs, capsys, no_uvicorn, port):
    code, err = _serve(capsys, str(runs["classify"]), "--port", port)
    assert code == 2
    assert f"--port {port}: not a port number (0-65535)" in _one_line(err)


def test_a_port_in_use_and_a_host_that_is_not_ours_are_one_line(runs, capsys, no_uvicorn):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _serve(capsys, str(runs["classify"]), "--port", str(port))
    assert code == 2
    assert f"--port {port}: cannot listen there (already in use)" in _one_line(err)
    code, err = _serve(capsys, str(runs["classify"]), "--host", "no.such.host.invalid")
    assert code == 2
    assert "--host no.such.host.invalid: not an address of this machine" in _one_line(err)


# ------------------------------------------------------------------ a real uvicorn, in-process
@contextlib.contextmanager
def _uvicorn(app):
    """`app` under a real uvicorn on a free port, in a thread of this process."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="critical", timeout_keep_alive=30
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


def _post(conn: http.client.HTTPConnection, path: str, body: bytes, ctype: str):
    conn.request("POST", path, body=body, headers={"Content-Type": ctype})
    response = conn.getresponse()
    return response.status, response.getheader("connection"), response.read()


def _good_json() -> bytes:
    return json.dumps({"image": base64.b64encode(digit_png()).decode()}).encode()


def test_json_nested_100000_deep_is_a_4xx_and_the_connection_still_serves(recognizers, tmp_path):
    from recog.serve import ServeConfig, create_app

    app = create_app(recognizers, ServeConfig(db_url=f"sqlite:///{tmp_path / 'h.db'}"))
    deep = b"[" * 100_000 + b"]" * 100_000
    bodies = {
        "/v1/predict": b'{"image": ' + deep + b"}",
        "/v1/feedback": b'{"prediction_id": "x", "label": ' + deep + b"}",
    }
    with _uvicorn(app) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for path, body in bodies.items():
                status, _, text = _post(conn, path, body, "application/json")
                assert 400 <= status < 500, (path, status, text[:300])
                answer = json.loads(text)
                assert set(answer) == {"error", "detail"}, answer
                # the same keep-alive connection: the next request is answered
                status, _, text = _post(conn, "/v1/predict", _good_json(), "application/json")
                assert status == 200, text[:300]
            assert conn.sock is not None, "the connection was kept all along"
        finally:
            conn.close()


def test_a_bug_in_a_route_is_a_json_500_without_traceback_on_a_real_server(
    recognizers, tmp_path, monkeypatch
):
    from recog.serve import ServeConfig, create_app

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals /home/x/model.py")

    app = create_app(recognizers, ServeConfig(db_url=f"sqlite:///{tmp_path / 'h.db'}"))
    with _uvicorn(app) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            monkeypatch.setattr(recognizers["digits"].task, "to_record", broken)
            status, _, text = _post(conn, "/v1/predict", _good_json(), "application/json")
            assert status == 500
            assert json.loads(text) == {"error": "internal", "detail": "internal server error"}
            assert b"secret" not in text and b"Traceback" not in text
            monkeypatch.undo()
            status, _, text = _post(conn, "/v1/predict", _good_json(), "application/json")
            assert status == 200, text[:300]
        finally:
            conn.close()


# ------------------------------------------------------------------ SIGTERM under load
def test_sigterm_under_load_answers_every_accepted_request_and_records_it(runs, tmp_path):
    from recog.serve.store import Store

    requests = 12
    # a batch waits 3 s to fill: every request is accepted, read and queued when SIGTERM comes
    with live_server(
        [runs["classify"]], tmp_path, "--max-wait-ms", "3000", "--max-batch", "64"
    ) as server:
        db = next(tmp_path.glob("history-*.db"))
        sent = threading.Barrier(requests + 1)

        def predict(_):
            with httpx.Client(base_url=server.url, timeout=60) as client:
                sent.wait()
                return client.post("/v1/predict", files={"file": ("d.png", digit_png())})

        with ThreadPoolExecutor(requests) as pool:
            futures = [pool.submit(predict, i) for i in range(requests)]
            sent.wait()
            time.sleep(1.5)
            server.proc.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        # uvicorn ends by re-raising the signal it handled: the usual exit of a SIGTERM
        assert server.proc.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "Traceback" not in server.log.read_text()
        assert [a.status_code for a in answers] == [200] * requests, [a.text for a in answers]
        # each was waiting in the batch when the signal came, 1.5 s in
        assert min(a.json()["latency_ms"] for a in answers) > 1500
        with pytest.raises(httpx.ConnectError):  # it is gone: nothing more is accepted
            httpx.get(server.url + "/healthz", timeout=5)
    store = Store(f"sqlite:///{db}")
    try:
        recorded = {row["id"] for row in store.history(limit=1000)}
    finally:
        store.close()
    assert {a.json()["id"] for a in answers} <= recorded
    assert len(recorded) == requests

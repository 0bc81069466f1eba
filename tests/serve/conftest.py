"""Fixtures for the server tests: trained runs, loaded recognizers, a TestClient factory, and
history databases of each kind (SQLite, and a real PostgreSQL server started for the session)."""

from __future__ import annotations

import itertools
import uuid

import pytest
from pgserver import PgServer, PgUnavailable
from serving import trained_runs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory)


@pytest.fixture(scope="session")
def recognizers(runs):
    import recog

    return {"digits": recog.load(runs["classify"]), "shapes": recog.load(runs["detect"])}


@pytest.fixture(scope="session")
def postgres_server():
    """One throw-away PostgreSQL server for the session (tests/pgserver.py), removed at the end."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg 3 is not installed (pip install 'recog[postgres]')")
    try:
        server = PgServer.create()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.remove()


@pytest.fixture
def postgres(postgres_server):
    """The session's PostgreSQL server, running (a test that stopped it must not stop the rest)."""
    if not postgres_server.running():
        postgres_server.start()
    return postgres_server


@pytest.fixture(params=["sqlite", "postgresql"])
def new_db(request, tmp_path):
    """new_db() -> the URL of a fresh, empty history database, of each kind in turn."""
    if request.param == "sqlite":
        count = itertools.count()
        return lambda: f"sqlite:///{tmp_path / f'history-{next(count)}.db'}"
    server = request.getfixturevalue("postgres")
    return lambda: server.create_database(f"t{uuid.uuid4().hex[:16]}")


@pytest.fixture
def db_url(new_db):
    """A fresh history database's URL: SQLite, then PostgreSQL."""
    return new_db()


@pytest.fixture
def make_client(recognizers, tmp_path):
    """make_client(**ServeConfig fields) -> a started TestClient on a fresh SQLite history."""
    from fastapi.testclient import TestClient

    from recog.serve import ServeConfig, create_app

    clients = []

    def make(**kwargs):
        kwargs.setdefault("db_url", f"sqlite:///{tmp_path / 'history.db'}")
        kwargs.setdefault("warm_up", False)
        app = create_app(recognizers, ServeConfig(**kwargs))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def store_client(make_client, db_url):
    """A started TestClient whose history is `db_url` (SQLite, then PostgreSQL)."""
    return make_client(db_url=db_url)

"""Fixtures for the server tests: trained runs, loaded recognizers, a TestClient factory."""

from __future__ import annotations

import pytest
from serving import trained_runs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory)


@pytest.fixture(scope="session")
def recognizers(runs):
    import recog

    return {"digits": recog.load(runs["classify"]), "shapes": recog.load(runs["detect"])}


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

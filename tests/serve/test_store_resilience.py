"""The history store's schema and its survival: Alembic migrations, the write-behind queue, a
commit whose outcome is unknown, and a PostgreSQL server stopped while predictions keep coming."""

from __future__ import annotations

import threading
import time

import pytest
from pgserver import wait_until
from serving import digit_png
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from recog.serve import migrate
from recog.serve.store import Store
from recog.serve.tables import Base, PredictionRow, engine_for


def _record(store: Store, i: int) -> bool:
    return store.record(
        prediction_id=f"{i:032x}",
        model="m",
        task="classify",
        image_sha256="f" * 64,
        width=3,
        height=2,
        result={"label": "x", "score": 0.5},
        latency_ms=1.0,
    )


def _stored_ids(url: str) -> list[str]:
    """Every prediction id in the database (duplicates would appear twice)."""
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return list(conn.scalars(select(PredictionRow.id)))
    finally:
        engine.dispose()


def _lost_connection() -> OperationalError:
    return OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))


# ------------------------------------------------------------------ migrations
def test_the_migrations_build_exactly_the_models_schema(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    Store(db_url).close()
    engine = engine_for(db_url)
    try:
        with engine.connect() as conn:
            assert migrate.current(conn) == migrate.head() == "0001"
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()


def test_opening_a_migrated_database_again_changes_nothing(db_url, monkeypatch):
    store = Store(db_url)
    _record(store, 1)
    store.close()
    from alembic import command

    def refuse(*args, **kwargs):
        raise AssertionError("an up-to-date database must not be migrated again")

    monkeypatch.setattr(command, "upgrade", refuse)
    monkeypatch.setattr(command, "stamp", refuse)
    again = Store(db_url)
    assert [row["id"] for row in again.history()] == [f"{1:032x}"]
    again.close()
    engine = engine_for(db_url)
    with engine.connect() as conn:
        assert list(conn.execute(text("SELECT version_num FROM alembic_version"))) == [("0001",)]
    engine.dispose()


def test_a_database_made_by_create_all_is_stamped_and_keeps_its_rows(db_url):
    """What the store made before migrations: the tables, no alembic_version."""
    engine = engine_for(db_url)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            PredictionRow.__table__.insert(),
            {
                "id": "old" + "0" * 29,
                "created": migrate_time(),
                "model": "m",
                "task": "classify",
                "image_sha256": "e" * 64,
                "width": 1,
                "height": 1,
                "result": {},
                "latency_ms": 2.0,
            },
        )
    engine.dispose()
    store = Store(db_url)
    assert [row["id"] for row in store.history()] == ["old" + "0" * 29]
    _record(store, 2)
    assert len(store.history()) == 2
    store.close()
    engine = engine_for(db_url)
    with engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
    engine.dispose()


def test_a_schema_newer_than_this_recog_is_one_clear_error(tmp_path):
    from recog.errors import RecogError

    url = f"sqlite:///{tmp_path / 'h.db'}"
    Store(url).close()
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(RecogError, match=r"cannot migrate its schema \(.*0099") as caught:
        Store(url)
    assert "\n" not in str(caught.value)


def migrate_time():
    import datetime as dt

    return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


# ------------------------------------------------------------------ the write-behind queue
def test_a_commit_whose_outcome_is_unknown_is_retried_without_duplicates(db_url, monkeypatch):
    """The batch is committed, then the connection drops before the writer hears so: it retries
    the same rows, and each is stored once (a plain INSERT would refuse the whole retry)."""
    batches: list[list[str]] = []
    real = Store._write_batch

    def committed_then_lost(self, rows):
        batches.append([r.id for r in rows])
        real(self, rows)
        if len(batches) == 1:
            raise _lost_connection()

    monkeypatch.setattr(Store, "_write_batch", committed_then_lost)
    store = Store(db_url)
    with store.writer._cond:  # queue all 20 before the writer can take a batch: one batch
        accepted = [_record(store, i) for i in range(20)]
    assert all(accepted)
    assert wait_until(lambda: store.writer.queued() == 0, 30)
    store.close()
    ids = [f"{i:032x}" for i in range(20)]
    assert batches[0] == ids and batches[1][: len(ids)] == ids, "the same rows were sent twice"
    assert store.writer.written == 20 and store.writer.dropped == {"queue_full": 0, "rejected": 0}
    stored = _stored_ids(db_url)
    assert sorted(stored) == ids  # each once


def test_a_full_queue_drops_new_rows_without_blocking_and_keeps_the_queued(tmp_path, monkeypatch):
    down = threading.Event()
    down.set()
    real_write, real_probe = Store._write_batch, Store._probe

    def write(self, rows):
        if down.is_set():
            raise _lost_connection()
        real_write(self, rows)

    def probe(self):
        if down.is_set():
            raise _lost_connection()
        real_probe(self)

    monkeypatch.setattr(Store, "_write_batch", write)
    monkeypatch.setattr(Store, "_probe", probe)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = Store(url, queue=3)
    start = time.perf_counter()
    accepted = [_record(store, i) for i in range(10)]
    assert time.perf_counter() - start < 0.5  # never waits for the database
    assert accepted == [True] * 3 + [False] * 7
    assert wait_until(lambda: store.health()["status"] == "degraded", 10)
    health = store.health()
    assert health["queued"] == 3 and health["dropped"] == 7 and "3 rows queued" in health["detail"]
    assert store.flush(timeout=5) is False  # no waiting on a database that is down
    down.clear()
    assert wait_until(lambda: store.health() == {**health, "status": "ok", "detail": None,
                                                 "queued": 0}, 10)  # fmt: skip
    store.close()
    assert sorted(_stored_ids(url)) == [f"{i:032x}" for i in range(3)]


def test_closing_writes_what_is_still_queued(tmp_path, monkeypatch):
    writing = threading.Event()
    real = Store._write_batch

    def slow(self, rows):
        writing.set()
        time.sleep(0.3)
        real(self, rows)

    monkeypatch.setattr(Store, "_write_batch", slow)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = Store(url)
    for i in range(150):
        _record(store, i)
    assert writing.wait(10)
    for i in range(150, 300):  # queued while the first batch is being written
        _record(store, i)
    assert store.writer.queued() == 300
    store.close()
    assert store.writer.queued() == 0
    assert len(_stored_ids(url)) == 300


def test_feedback_on_a_prediction_still_queued_is_a_503_that_says_so(make_client, monkeypatch):
    import recog.serve.store as store_module

    release = threading.Event()
    real = Store._write_batch

    def slow(self, rows):
        release.wait(30)
        real(self, rows)

    monkeypatch.setattr(Store, "_write_batch", slow)
    monkeypatch.setattr(store_module, "FLUSH_S", 0.2)
    client = make_client()
    pid = client.post("/v1/predict", files={"file": ("d.png", digit_png(4))}).json()["id"]
    r = client.post("/v1/feedback", json={"prediction_id": pid, "label": "4"})
    assert r.status_code == 503 and r.json()["error"] == "not_recorded_yet", r.text
    assert pid in r.json()["detail"]
    release.set()
    assert wait_until(lambda: client.app.state.recog_store.writer.queued() == 0, 10)
    r = client.post("/v1/feedback", json={"prediction_id": pid, "label": "4"})
    assert r.status_code == 200 and r.json()["label"] == "4", r.text


# ------------------------------------------------------------------ a real database going away
def _metric(text_: str, name: str) -> float:
    for line in text_.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def _one_line_error(r, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == code, body
    assert "\n" not in body["detail"] and "Traceback" not in r.text


def test_postgres_stopped_mid_load_predictions_go_on_and_the_queue_lands_once(
    make_client, postgres
):
    url = postgres.create_database("stopped_mid_load")
    client = make_client(db_url=url, history_queue=5)
    image = {"file": ("d.png", digit_png(7))}

    def predict() -> str:
        start = time.perf_counter()
        r = client.post("/v1/predict", files=image)
        assert r.status_code == 200, r.text
        assert time.perf_counter() - start < 10
        return r.json()["id"]

    before = [predict() for _ in range(3)]
    assert {i["id"] for i in client.get("/v1/history").json()["items"]} == set(before)
    assert client.get("/healthz").json()["store"]["status"] == "ok"
    postgres.stop()
    try:
        during = [predict() for _ in range(8)]  # room for 5: 3 are dropped, all are answered
        assert wait_until(lambda: client.get("/healthz").json()["status"] == "degraded", 15)
        health = client.get("/healthz")
        assert health.status_code == 200
        store = health.json()["store"]
        assert store["status"] == "degraded" and store["detail"]
        assert (store["queued"], store["dropped"]) == (5, 3)
        metrics = client.get("/metrics").text
        assert _metric(metrics, 'recog_history_dropped_total{reason="queue_full"}') == 3
        assert _metric(metrics, "recog_history_queued") == 5
        assert _metric(metrics, "recog_history_degraded") == 1
        _one_line_error(client.get("/v1/history"), 503, "store_unavailable")
        feedback = {"prediction_id": before[0], "label": "7"}
        _one_line_error(client.post("/v1/feedback", json=feedback), 503, "store_unavailable")
    finally:
        postgres.start()
    assert wait_until(lambda: client.get("/healthz").json()["store"]["queued"] == 0, 30)
    assert client.get("/healthz").json()["status"] == "ok"
    stored = _stored_ids(url)
    assert sorted(stored) == sorted(before + during[:5])  # the queued rows, each once
    assert len(stored) == len(set(stored))
    assert client.post("/v1/feedback", json=feedback).status_code == 200
    metrics = client.get("/metrics").text
    assert _metric(metrics, "recog_history_written_total") == 8
    assert _metric(metrics, "recog_history_degraded") == 0


def test_the_writer_reconnects_after_a_postgres_restart(postgres):
    """The pooled connections die with the server; the writer gets new ones by itself."""
    db_url = postgres.create_database("restarted")
    store = Store(db_url)
    for i in range(50):
        _record(store, i)
    assert store.flush(10)
    postgres.restart()
    for i in range(50, 100):
        _record(store, i)
    assert wait_until(lambda: store.writer.written == 100, 30)
    store.close()
    engine = engine_for(db_url)
    with engine.connect() as conn:
        total, distinct = conn.execute(
            select(func.count(), func.count(PredictionRow.id.distinct()))
        ).one()
    engine.dispose()
    assert total == distinct == 100

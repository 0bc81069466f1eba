"""The history store survives its database: `recog serve --db postgresql://...` with PostgreSQL
restarted twice under load.

A throw-away PostgreSQL server is started in a temporary directory
(tests/pgserver.py: Debian's binaries, run as the `postgres` user when we
are root, fsync on), a small `cnn` is trained on the built-in digits for
one epoch, and `recog serve` runs it as a subprocess with that database.
`--concurrency` closed-loop clients on 127.0.0.1 POST a digit to
/v1/predict for `--duration` seconds; during the load PostgreSQL is stopped
(`pg_ctl stop -m fast`, which cuts every connection), kept down for
`--down-s` seconds and started again, `--restarts` times.  After the load
the server gets time to write what it queued, and the counts are printed:
requests answered (with the prediction ids of their responses), rows in
`predictions`, answered ids missing from the table, duplicated rows and
ids, 5xx answers, and the `recog_history_dropped_total` counter of
/metrics.  The targets: 0 5xx, 0 duplicates, and missing rows == dropped
rows (0 while the queue bound, `--history-queue`, was never reached).

    .venv/bin/python bench/serve_db_restart.py              # 5 minutes, 16 clients; appends to bench/README.md
    .venv/bin/python bench/serve_db_restart.py --quick      # 60 s, prints only
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import append_results, header  # noqa: E402
from pgserver import PgServer  # noqa: E402
from serve_load import start_server, stop_server  # noqa: E402

import recog  # noqa: E402

SEED = 0


def digit_png() -> bytes:
    """One handwritten digit of the built-in set, upscaled to 64 px, as PNG."""
    from PIL import Image

    from recog.data.formats.digits import digits_images

    images, _ = digits_images()
    buf = io.BytesIO()
    arr = images[SEED].permute(1, 2, 0).numpy()
    Image.fromarray(arr).resize((64, 64), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


class Load:
    """Closed-loop clients until `stop` is set; what each answer was."""

    def __init__(self, url: str, image: bytes, concurrency: int) -> None:
        self.url, self.image, self.concurrency = url, image, concurrency
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ids: list[str] = []
        self.status: dict[int, int] = {}
        self.errors: list[str] = []  # the first few, for people
        self.unanswered = 0  # requests that got no HTTP answer at all
        self.latencies: list[tuple[float, float]] = []  # (monotonic time, ms)
        self.threads = [threading.Thread(target=self._client) for _ in range(concurrency)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _client(self) -> None:
        files = {"file": ("digit.png", self.image, "image/png")}
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    r = client.post("/v1/predict", files=files)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.unanswered += 1
                        if len(self.errors) < 20:
                            self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                ms = (time.perf_counter() - start) * 1000.0
                with self.lock:
                    self.status[r.status_code] = self.status.get(r.status_code, 0) + 1
                    self.latencies.append((time.monotonic(), ms))
                    if r.status_code == 200:
                        self.ids.append(r.json()["id"])
                    elif len(self.errors) < 20:
                        self.errors.append(f"HTTP {r.status_code}: {r.text[:200]}")


def watch_health(url: str, stop: threading.Event, seen: dict) -> None:
    """Poll /healthz once a second: the largest queue and whether `degraded` was ever reported."""
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.wait(1.0):
            try:
                store = client.get("/healthz").json()["store"]
            except (httpx.HTTPError, KeyError, ValueError):
                seen["health_errors"] += 1
                continue
            seen["max_queued"] = max(seen["max_queued"], store["queued"])
            seen["degraded_polls"] += store["status"] == "degraded"


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def stored_ids(db: str) -> list[str]:
    import psycopg

    with psycopg.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM predictions")]


def run(args, work: Path) -> tuple[dict, str]:
    """The whole measurement: its numbers and the PostgreSQL version."""
    pg = PgServer.create(fsync=True)
    try:
        db = pg.create_database("history")
        version = pg._run("postgres", "--version").stdout.split()[
            2
        ]  # postgres (PostgreSQL) 15.18 (...)
        print(f"PostgreSQL {version} in {pg.root}, port {pg.port}")
        start = time.perf_counter()
        rec = recog.train("digits", "cnn", epochs=1, seed=SEED, out=str(work / "run"))
        print(f"trained cnn on digits for one epoch in {time.perf_counter() - start:.0f} s")
        extra = ("--history-queue", str(args.history_queue))
        proc, url, log = start_server(
            rec.run_dir, work, max_batch=16, max_wait_ms=5.0, db=db, extra=extra
        )
        try:
            result = load_with_restarts(args, pg, url)
            drained = time.monotonic()
            deadline = drained + 120
            while time.monotonic() < deadline:  # the queue is written once the database is back
                store = httpx.get(url + "/healthz", timeout=10).json()["store"]
                if store["status"] == "ok" and store["queued"] == 0:
                    break
                time.sleep(0.2)
            result["drain_s"] = time.monotonic() - drained
            result["dropped"] = metric(url, 'recog_history_dropped_total{reason="queue_full"}')
            result["rejected"] = metric(url, 'recog_history_dropped_total{reason="rejected"}')
            result["written"] = metric(url, "recog_history_written_total")
        finally:
            stop_server(proc, log)
        result["server_log_tracebacks"] = Path(log.name).read_text().count("Traceback")
        result["rows"] = stored_ids(db)
    finally:
        pg.remove()
    return result, f"PostgreSQL {version}"


def load_with_restarts(args, pg: PgServer, url: str) -> dict:
    load = Load(url, digit_png(), args.concurrency)
    seen = {"max_queued": 0, "degraded_polls": 0, "health_errors": 0}
    stop_watch = threading.Event()
    watcher = threading.Thread(target=watch_health, args=(url, stop_watch, seen))
    begin = time.monotonic()
    load.start()
    watcher.start()
    outages: list[tuple[float, float]] = []
    try:
        for k in range(1, args.restarts + 1):
            at = begin + args.duration * k / (args.restarts + 1) - args.down_s / 2
            time.sleep(max(0.0, at - time.monotonic()))
            down = time.monotonic()
            pg.stop()
            print(f"  {down - begin:5.0f} s: PostgreSQL stopped", flush=True)
            time.sleep(args.down_s)
            pg.start()
            outages.append((down, time.monotonic()))
            print(f"  {time.monotonic() - begin:5.0f} s: PostgreSQL started again", flush=True)
        time.sleep(max(0.0, begin + args.duration - time.monotonic()))
    finally:
        load.join()
        stop_watch.set()
        watcher.join()
    seconds = time.monotonic() - begin
    during = [ms for t, ms in load.latencies if any(a <= t <= b + 1 for a, b in outages)]
    return {
        "seconds": seconds,
        "ids": load.ids,
        "status": load.status,
        "errors": load.errors,
        "unanswered": load.unanswered,
        "latencies": [ms for _, ms in load.latencies],
        "latencies_down": during,
        "outages": [b - a for a, b in outages],
        **seen,
    }


def report(r: dict, args) -> tuple[str, list[str], bool]:
    answered, rows = r["ids"], r["rows"]
    answered_set, row_set = set(answered), set(rows)
    missing = len(answered_set - row_set)
    unknown = len(row_set - answered_set)  # rows of requests whose answers never arrived
    dup_rows, dup_ids = len(rows) - len(row_set), len(answered) - len(answered_set)
    five = sum(n for s, n in r["status"].items() if s >= 500)
    q = statistics.quantiles(r["latencies"], n=100, method="inclusive")
    qd = (
        statistics.quantiles(r["latencies_down"], n=100, method="inclusive")
        if len(r["latencies_down"]) > 1
        else [float("nan")] * 99
    )
    lines = [
        "| measure | value |",
        "| --- | ---: |",
        f"| load | {r['seconds']:.0f} s, {args.concurrency} clients, PostgreSQL down "
        f"{' + '.join(f'{d:.1f}' for d in r['outages'])} s |",
        f"| requests answered 200 | {len(answered)} ({len(answered) / r['seconds']:.1f}/s) |",
        f"| answers by status | {dict(sorted(r['status'].items()))} |",
        f"| 5xx answers | {five} |",
        f"| requests without any answer | {r['unanswered']} |",
        f"| rows in `predictions` | {len(rows)} |",
        f"| answered ids missing from the table | {missing} |",
        f"| rows without an answered id | {unknown} |",
        f"| duplicated rows / duplicated answered ids | {dup_rows} / {dup_ids} |",
        f"| recog_history_dropped_total queue_full / rejected | {r['dropped']:.0f} / {r['rejected']:.0f} |",
        f"| recog_history_written_total | {r['written']:.0f} |",
        f"| largest queue seen on /healthz (bound {args.history_queue}) | {r['max_queued']} |",
        f"| /healthz polls that said degraded | {r['degraded_polls']} |",
        f"| queue written after the load in | {r['drain_s']:.1f} s |",
        f"| latency p50 / p99 ms (all) | {q[49]:.1f} / {q[98]:.1f} |",
        f"| latency p50 / p99 ms (database down) | {qd[49]:.1f} / {qd[98]:.1f} |",
        f"| tracebacks in the server log | {r['server_log_tracebacks']} |",
    ]
    ok = (
        five == 0
        and r["unanswered"] == 0
        and dup_rows == 0
        and dup_ids == 0
        and missing == int(r["dropped"])
    )
    ok = ok and (r["dropped"] > 0 or missing == 0) and r["degraded_polls"] > 0
    verdict = [
        f"lost rows for answered requests: {missing} (dropped by a full queue: "
        f"{r['dropped']:.0f}; target: equal, 0 while the bound was not reached): "
        f"{'met' if missing == int(r['dropped']) else 'NOT met'}",
        f"duplicates: {dup_rows + dup_ids} (target 0); 5xx: {five} (target 0); "
        f"degraded seen on /healthz: {r['degraded_polls'] > 0}",
    ]
    if r["errors"]:
        verdict.append(f"first error: {r['errors'][0]}")
    return "\n".join(lines), verdict, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--down-s", type=float, default=10.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--history-queue", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="60 s of load, no README")
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/README.md")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.no_append = min(args.duration, 60.0), True
    if not 1 <= args.concurrency <= 16:
        parser.error("--concurrency: 1 to 16 clients")
    import alembic
    import psycopg
    import sqlalchemy

    head = header("recog serve with its PostgreSQL history restarted under load", seed=SEED)
    head += (
        f"\npsycopg {psycopg.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
        f"Alembic {alembic.__version__}"
    )
    print(head)
    print(
        f"load: {args.duration:.0f} s, {args.concurrency} clients, PostgreSQL stopped "
        f"{args.restarts} times for {args.down_s:.0f} s, --history-queue {args.history_queue}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        result, version = run(args, Path(tmp))
    head += f", {version}"
    out, verdict, ok = report(result, args)
    print()
    print(out)
    print("\n".join(verdict))
    if not args.no_append:
        command = "bench/serve_db_restart.py" + (
            "" if args.duration == 300 else f" --duration {args.duration:.0f}"
        )
        setup = (
            f"{command}: {args.concurrency} clients, {args.restarts} restarts of "
            f"{args.down_s:.0f} s, --history-queue {args.history_queue}"
        )
        readme = append_results("serve_db_restart.py", head, setup, out, verdict)
        print(f"appended to {readme}")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())

"""210 hostile uploads against a real `recog serve`, then a valid one: all 4xx, the same process
alive, and no memory held per upload (the server's RSS does not rise from round to round)."""

from __future__ import annotations

import base64
import statistics
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
from serving import digit_png, hostile_payloads, live_server

# The server runs with glibc's mmap threshold fixed, so that its RSS follows the memory it
# holds.  Under the default (a threshold that rises to the largest block freed) the freed
# bodies of the 11 MB uploads stay in the threads' malloc arenas: RSS rose 31-43 MB over 200
# hostile requests, in ~11 MB steps, still took a step after 880, and rose 144 MB over 600
# with 12 clients, while tracemalloc in the server counted +16 KB and +26 KB of Python memory
# over 800.  With the threshold fixed, 1000 requests (4 or 12 clients) moved it 1-2 MB.  So
# the old check, "RSS grew < 50 MB after 200", measured the allocator, and failed once
# (55.3 MB) in a busy full run.  What is left is ~11 MB that a round's big bodies may or may
# not still hold when sampled: hence a sample after each whole round of the 14 payloads, and
# medians rather than single samples.
_LIVE_MEMORY = "glibc.malloc.mmap_threshold=131072"
#: rounds of the hostile payloads (14 each) with an RSS sample after each, and samples in
#: each end window of the leak check
_ROUNDS, _WINDOW = 15, 5
#: most the median RSS of the last window may exceed that of the first, 10 rounds (140
#: requests) later: a leak of 60 KB per request rises 8 MB
_RISE_MB = 8.0


def _send(client: httpx.Client, how: str, payload) -> httpx.Response:
    if how == "json":
        return client.post("/v1/predict", json=payload)
    if how == "field":
        return client.post(
            "/v1/predict",
            data={"comment": payload.decode()},
            files={"file": ("a.png", digit_png(), "image/png")},
        )
    return client.post("/v1/predict", files={"file": ("photo.jpg", payload, "image/jpeg")})


def _check_answers(answers: list[tuple[str, httpx.Response]]) -> None:
    for name, response in answers:
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        body = response.json()
        assert body["detail"] and body["error"], name
        assert "Traceback" not in response.text, name
    statuses = {name: r.status_code for name, r in answers}
    assert statuses["png bomb 20000x20000"] == 413
    assert statuses["gif 5000 frames"] == 413
    assert statuses["huge file 11 MB"] == 413
    assert statuses["text named .jpg"] == 415
    assert statuses["invalid base64"] == 400


def test_hostile_uploads_then_a_valid_one(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", _LIVE_MEMORY)  # read by the server process alone
    payloads = hostile_payloads()
    with live_server([runs["classify"]], tmp_path) as server:
        proc = psutil.Process(server.proc.pid)

        def hit(case):
            name, how, payload = case
            with httpx.Client(base_url=server.url, timeout=60) as c:
                return name, _send(c, how, payload)

        with ThreadPoolExecutor(4) as pool, httpx.Client(base_url=server.url, timeout=60) as client:
            # warm up: the model, each decoder and the worker threads, 4 requests at a time
            for _ in range(3):
                assert _send(client, "file", digit_png()).status_code == 200
                list(pool.map(hit, payloads))
            answers, rss_mb = [], []
            for _ in range(_ROUNDS):
                answers += pool.map(hit, payloads)
                rss_mb.append(proc.memory_info().rss / 2**20)
            _check_answers(answers)
            ok = client.post("/v1/predict", json={"image": base64.b64encode(digit_png(7)).decode()})
            assert ok.status_code == 200 and ok.json()["result"]["label"]
        assert server.proc.poll() is None and proc.is_running()
        assert proc.pid == server.proc.pid
    series = " ".join(f"{mb:.0f}" for mb in rss_mb)
    print(f"server RSS (MB) after each round: {series}")
    rise = statistics.median(rss_mb[-_WINDOW:]) - statistics.median(rss_mb[:_WINDOW])
    assert rise < _RISE_MB, (
        f"server memory rose {rise:.1f} MB in {_ROUNDS - _WINDOW} rounds: {series}"
    )

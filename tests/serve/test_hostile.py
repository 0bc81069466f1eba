"""200 hostile uploads against a real `recog serve`, then a valid one: all 4xx, same process alive."""

from __future__ import annotations

import base64
import itertools
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
from serving import digit_png, hostile_payloads, live_server


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


def test_200_hostile_uploads_then_a_valid_one(runs, tmp_path):
    payloads = hostile_payloads()
    with live_server([runs["classify"]], tmp_path) as server:
        proc = psutil.Process(server.proc.pid)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            # warm up so the memory baseline includes the allocator's steady state
            for _ in range(5):
                assert _send(client, "file", digit_png()).status_code == 200
                for _name, how, payload in payloads:
                    _send(client, how, payload)
            rss_before = proc.memory_info().rss
            cases = list(itertools.islice(itertools.cycle(payloads), 200))

            def hit(case):
                name, how, payload = case
                with httpx.Client(base_url=server.url, timeout=60) as c:
                    return name, _send(c, how, payload)

            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(hit, cases))
            for name, response in answers:
                assert 400 <= response.status_code < 500, (
                    name,
                    response.status_code,
                    response.text,
                )
                body = response.json()
                assert body["detail"] and body["error"], name
                assert "Traceback" not in response.text, name
            statuses = {name: r.status_code for name, r in answers}
            assert statuses["png bomb 20000x20000"] == 413
            assert statuses["gif 5000 frames"] == 413
            assert statuses["huge file 11 MB"] == 413
            assert statuses["text named .jpg"] == 415
            assert statuses["invalid base64"] == 400
            ok = client.post("/v1/predict", json={"image": base64.b64encode(digit_png(7)).decode()})
            assert ok.status_code == 200 and ok.json()["result"]["label"]
            rss_after = proc.memory_info().rss
        assert server.proc.poll() is None and proc.is_running()
        assert proc.pid == server.proc.pid
        growth_mb = (rss_after - rss_before) / 2**20
        assert growth_mb < 50, f"server memory grew {growth_mb:.1f} MB"

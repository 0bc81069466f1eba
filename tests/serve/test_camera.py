"""The camera socket (`WS /v1/camera`): answers that match /v1/predict, back-pressure that drops
rather than queues, the API key from a browser's first message, and nothing left behind."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time

import pytest
from PIL import Image
from starlette.websockets import WebSocketDisconnect

from recog.serve.camera import LatestFrame


def _png(seed: int = 0, size: int = 32) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size, size, 3), dtype="uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_latest_frame_keeps_only_the_newest_and_counts_the_rest():
    async def run() -> tuple[list[bytes | None], int, int]:
        slot = LatestFrame()
        for i in range(5):  # the model is busy: five frames arrive, one waits
            slot.put(bytes([i]))
        first = await slot.get()
        slot.put(b"x")
        slot.close()  # the client went away with b"x" still waiting
        return [first, await slot.get()], slot.dropped, slot.received

    got, dropped, received = asyncio.run(run())
    assert got == [(5, bytes([4])), None]
    assert (dropped, received) == (5, 6)


def test_camera_answers_match_predict(make_client):
    client = make_client()
    for model in ("digits", "shapes"):
        frame = _png(1, 48)
        expected = client.post(
            f"/v1/predict?model={model}", content=frame,
            headers={"Content-Type": "application/octet-stream"},
        ).json()  # fmt: skip
        with client.websocket_connect(f"/v1/camera?model={model}") as ws:
            ws.send_bytes(frame)
            reply = json.loads(ws.receive_text())
        assert reply["frame"] == reply["seq"] == 1
        assert reply["answered"] == 1 and reply["dropped"] == 0
        assert reply["image"]["width"] == expected["image"]["width"] == 48
        assert reply["result"] == expected["result"], model


def test_camera_refuses_what_is_not_an_image_and_goes_on(make_client):
    client = make_client()
    with client.websocket_connect("/v1/camera?model=digits") as ws:
        ws.send_bytes(b"this is text, not a frame")
        bad = json.loads(ws.receive_text())
        ws.send_bytes(_png())
        good = json.loads(ws.receive_text())
    assert bad["error"] == "unsupported_media"
    assert "result" in good and good["answered"] == 1


def test_camera_option_messages_are_checked(make_client):
    client = make_client()
    with client.websocket_connect("/v1/camera?model=shapes&conf=0.9") as ws:
        ws.send_text(json.dumps({"conf": 7}))
        reply = json.loads(ws.receive_text())
        assert reply["error"] == "invalid_option" and "conf" in reply["detail"]
        ws.send_text(json.dumps({"conf": 0.0}))
        ws.send_bytes(_png(2, 64))
        low = json.loads(ws.receive_text())
    with client.websocket_connect("/v1/camera?model=shapes&conf=0.99") as ws:
        ws.send_bytes(_png(2, 64))
        high = json.loads(ws.receive_text())
    assert len(low["result"]["detections"]) >= len(high["result"]["detections"])


def test_camera_bad_query_and_unknown_model_close_the_socket(make_client):
    client = make_client()
    for url in ("/v1/camera?model=nope", "/v1/camera?conf=2", "/v1/camera?model=digits&max_det=3"):
        with pytest.raises(WebSocketDisconnect) as caught:
            with client.websocket_connect(url) as ws:
                ws.receive_text()
        assert caught.value.code == 1003, url


def test_camera_needs_the_key_when_the_server_has_one(make_client):
    client = make_client(api_key="s3cret")
    with pytest.raises(WebSocketDisconnect) as caught:
        with client.websocket_connect("/v1/camera") as ws:
            ws.send_text(json.dumps({"api_key": "wrong"}))
            ws.receive_text()
    assert caught.value.code == 1008
    with client.websocket_connect("/v1/camera") as ws:  # a browser: the key as first message
        ws.send_text(json.dumps({"api_key": "s3cret"}))
        ws.send_bytes(_png())
        assert "result" in json.loads(ws.receive_text())
    with client.websocket_connect("/v1/camera", headers={"X-API-Key": "s3cret"}) as ws:
        ws.send_bytes(_png())
        assert "result" in json.loads(ws.receive_text())


def test_camera_refuses_a_page_from_another_site(make_client):
    client = make_client()
    with pytest.raises(WebSocketDisconnect) as caught:
        with client.websocket_connect(
            "/v1/camera", headers={"Origin": "https://evil.example"}
        ) as ws:
            ws.receive_text()
    assert caught.value.code == 1008


def test_a_fast_client_gets_drops_not_a_queue_and_leaves_nothing_behind(make_client, monkeypatch):
    """A client sending far faster than the model answers: bounded latency, counted drops; after
    it disconnects mid-frame, no session, task or thread is left."""
    from recog.serve.batcher import MicroBatcher

    slow = MicroBatcher.submit

    async def submit(self, *args, **kwargs):  # a model that takes 50 ms a frame
        await asyncio.sleep(0.05)
        return await slow(self, *args, **kwargs)

    monkeypatch.setattr(MicroBatcher, "submit", submit)
    client = make_client()
    threads = threading.active_count()
    frame = _png(3)
    replies = []
    with client.websocket_connect("/v1/camera?model=digits") as ws:
        start = time.perf_counter()
        for _ in range(200):  # about 10x the answer rate
            ws.send_bytes(frame)
        sent_s = time.perf_counter() - start
        while True:
            reply = json.loads(ws.receive_text())
            replies.append(reply)
            if reply["received"] == 200 and reply["answered"] + reply["dropped"] == 200:
                break
        ws.send_bytes(frame)  # and leave mid-frame
    last = replies[-1]
    assert last["dropped"] > 100, last  # most frames were replaced, not queued
    assert last["answered"] < 100
    # bounded: every answer came within a few model times of the last frame sent
    assert all(r["latency_ms"] < 2000 for r in replies)
    assert sent_s < 10
    deadline = time.time() + 5
    metrics = ""
    while time.time() < deadline:
        metrics = client.get("/metrics").text
        if "recog_camera_sessions 0.0" in metrics:
            break
        time.sleep(0.05)
    assert "recog_camera_sessions 0.0" in metrics
    assert 'recog_camera_frames_total{model="digits",outcome="dropped"}' in metrics
    assert "recog_camera_frame_seconds_count" in metrics
    assert threading.active_count() <= threads + 2
    # no history rows for camera frames (the default)
    assert client.get("/v1/history").json().get("items", []) == []


def test_camera_history_writes_frames_only_when_asked(make_client):
    client = make_client(camera_history=True)
    with client.websocket_connect("/v1/camera?model=digits") as ws:
        for seed in range(3):
            ws.send_bytes(_png(seed))
            json.loads(ws.receive_text())
    items = client.get("/v1/history").json()["items"]
    assert len(items) == 3 and {i["model"] for i in items} == {"digits"}

"""Micro-batching: concurrent requests share forward passes; the event loop stays free."""

from __future__ import annotations

import asyncio
import time

import httpx
import torch
from serving import digit_png

from recog.serve import ServeConfig, create_app
from recog.serve.batcher import MicroBatcher


def _prepared(rec, n):
    return [rec.task.prepare(torch.full((3, 20, 20), i, dtype=torch.uint8)) for i in range(n)]


def test_concurrent_submits_are_grouped_up_to_max_batch(recognizers):
    rec = recognizers["digits"]
    sizes: list[int] = []

    async def main(max_batch):
        batcher = MicroBatcher(
            rec, max_batch=max_batch, max_wait_ms=50, observer=lambda n, s: sizes.append(n)
        )
        try:
            items = _prepared(rec, 10)
            return await asyncio.gather(
                *(batcher.submit(img, meta, top_k=2) for img, meta in items)
            )
        finally:
            await batcher.close()

    records = asyncio.run(main(4))
    assert sizes == [4, 4, 2]
    assert all(len(r["top_k"]) == 2 for r in records)
    # the same images one at a time give the same answers
    sizes.clear()
    singles = asyncio.run(main(1))
    assert sizes == [1] * 10
    for a, b in zip(records, singles, strict=True):
        assert a["label"] == b["label"]
        assert abs(a["score"] - b["score"]) < 1e-4


def test_a_lone_request_waits_at_most_max_wait(recognizers):
    rec = recognizers["digits"]

    async def main():
        batcher = MicroBatcher(rec, max_batch=64, max_wait_ms=30)
        ((img, meta),) = _prepared(rec, 1)
        await batcher.submit(img, meta, top_k=1)  # first call: thread start-up
        start = time.perf_counter()
        await batcher.submit(img, meta, top_k=1)
        elapsed = time.perf_counter() - start
        await batcher.close()
        return elapsed

    assert asyncio.run(main()) < 1.0


def test_server_answers_while_the_model_works(recognizers, tmp_path, monkeypatch):
    """Inference runs in a worker thread: /healthz is answered while a slow batch is running."""
    rec = recognizers["digits"]
    real_predict = rec.task.predict

    def slow_predict(*args, **kwargs):
        time.sleep(0.8)
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(rec.task, "predict", slow_predict)
    app = create_app(
        {"digits": rec},
        ServeConfig(
            db_url=f"sqlite:///{tmp_path / 'h.db'}", max_batch=8, max_wait_ms=20, warm_up=False
        ),
    )

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            files = {"file": ("d.png", digit_png(), "image/png")}
            predictions = [
                asyncio.create_task(client.post("/v1/predict", files=files)) for _ in range(6)
            ]
            await asyncio.sleep(0.3)  # the batch is now inside the model
            start = time.perf_counter()
            health = await client.get("/healthz")
            health_s = time.perf_counter() - start
            done = await asyncio.gather(*predictions)
            metrics = (await client.get("/metrics")).text
        return health, health_s, done, metrics

    health, health_s, done, metrics = asyncio.run(main())
    assert health.status_code == 200 and health_s < 0.4
    assert all(r.status_code == 200 for r in done)
    # six requests, fewer forward passes
    count = next(
        line
        for line in metrics.splitlines()
        if line.startswith('recog_batch_size_count{model="digits"}')
    )
    assert float(count.split()[-1]) < 6

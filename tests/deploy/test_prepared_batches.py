"""`prepared_batches`: each batch is decoded by several threads at once; order, sizes and
errors come through as if it were a plain loop."""

from __future__ import annotations

import threading

import pytest
import torch

from recog.api.images import prepared_batches
from recog.errors import RecogError


class _Task:
    """What `prepared_batches` asks of a task: `prepare` and `decode_size`."""

    def __init__(self, prepare):
        self.prepare = prepare

    def decode_size(self, width, height):
        return None


def test_batches_keep_order_and_are_prepared_by_worker_threads():
    images = [torch.full((3, 4, 4), i, dtype=torch.uint8) for i in range(10)]
    threads = set()

    def prepare(image, full_size=None):
        threads.add(threading.get_ident())
        return image, {"value": int(image[0, 0, 0])}

    batches = list(prepared_batches(images, 4, _Task(prepare), threads=2))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [m["value"] for b in batches for _, m in b] == list(range(10))
    assert threading.get_ident() not in threads  # decoded off the caller's thread


def test_an_unreadable_image_raises_in_the_caller(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = torch.zeros((3, 4, 4), dtype=torch.uint8)
    with pytest.raises(RecogError, match="bad.png"):
        list(
            prepared_batches(
                [good] * 4 + [bad], 4, _Task(lambda image, full_size=None: (image, {}))
            )
        )

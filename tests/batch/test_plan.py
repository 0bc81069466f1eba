"""How `recog predict --out` splits the cores: the cost model's choices, and the measurement."""

from __future__ import annotations

import pytest

from recog.batch.plan import cost, plan, split_cores


@pytest.mark.parametrize("n_cores", [1, 2, 4, 16, 64])
@pytest.mark.parametrize("decode_ms", [0.1, 0.6, 3.0])
@pytest.mark.parametrize("model_ms", [0.01, 0.4, 3.6, 40.0])
def test_split_is_the_cheapest_and_never_oversubscribes_a_multithreaded_model(
    n_cores, decode_ms, model_ms
):
    workers, threads = split_cores(decode_ms, model_ms, n_cores)
    assert 0 <= workers <= n_cores and threads >= 1
    if threads > 1:  # OpenMP threads must own their cores
        assert workers + threads <= n_cores
    best = min(cost(decode_ms, model_ms, n_cores, w) for w in range(n_cores + 1))
    assert cost(decode_ms, model_ms, n_cores, workers) == pytest.approx(best)


def test_measured_cases():
    # 2 cores, measured (plan.py's docstring): model-bound decodes here, decode-bound in workers
    assert split_cores(0.84, 3.3, 2) == (0, 2)
    assert split_cores(0.84, 0.39, 2) == (2, 1)
    assert split_cores(1.0, 0.05, 16)[0] >= 15  # a GPU model: nearly every core decodes
    assert split_cores(1.0, 1.0, 1) == (0, 1)


def test_plan_measures_the_first_batch_and_keeps_a_given_worker_count(digits, tmp_path):
    import numpy as np
    from PIL import Image

    from recog import api

    for i in range(8):
        Image.fromarray(np.full((40, 30, 3), 30 * i, np.uint8)).save(tmp_path / f"{i}.png")
    names = sorted(str(p) for p in tmp_path.iterdir())
    rec = api.load(digits.run_dir, device="cpu")
    given, none = plan(rec, names, workers=3, reject=True, n_cores=2)
    assert (given.workers, given.threads, none) == (3, 1, None)  # used as given
    measured, batch = plan(rec, names, workers=None, reject=True, n_cores=2)
    assert measured.decode_ms > 0 and measured.model_ms > 0
    assert (measured.workers, measured.threads) == split_cores(
        measured.decode_ms, measured.model_ms, 2
    )
    assert batch.names == names and sum(len(p) for p, _, _ in batch.groups) == 8
    assert "decoding workers" in measured.describe()

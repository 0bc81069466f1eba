"""Test-wide settings (tests are timed for 2 CPU cores) and the shared trained model."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

_RUN: dict[str, object] = {}


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """A `cnn` trained 2 epochs on digits (top-1 about 0.92), with its report: trained once
    per session for the explanation and robustness tests."""
    if "digits" not in _RUN:
        import recog

        out = tmp_path_factory.mktemp("shared") / "digits-cnn"
        _RUN["digits"] = recog.train("digits", "cnn", epochs=2, batch_size=64, out=str(out))
    return _RUN["digits"]

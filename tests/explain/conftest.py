"""One small digits classifier for the explanation tests, trained once per session."""

from __future__ import annotations

import pytest

_RUN: dict[str, object] = {}


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """A `cnn` trained 2 epochs on digits (top-1 about 0.92), with its report."""
    if "digits" not in _RUN:
        import recog

        out = tmp_path_factory.mktemp("explain") / "digits-cnn"
        _RUN["digits"] = recog.train("digits", "cnn", epochs=2, batch_size=64, out=str(out))
    return _RUN["digits"]

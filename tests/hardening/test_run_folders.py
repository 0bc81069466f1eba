"""A run folder is input like any other (issue 33): tampered or foreign run folders.

Each case edits one file of a copy of a tiny trained run (digits at 16 px, a width-8 CNN,
one epoch), runs `recog predict`, `export` or `train --resume` on it in this process, and
checks the one line (`recog: error: ...`, exit 2) names the file and the field or tensor,
and that every file of the run is byte for byte what it was (sha256 before and after).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import recog
from recog import cli
from recog.errors import RecogError
from recog.io import MAX_JSON_BYTES

TINY = ["--model", "cnn", "--model-args", "width=8", "--img-size", "16", "--batch-size", "64"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    assert cli.main(["train", "--data", "digits", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    return run


@pytest.fixture
def run(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny run, to tamper with."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "img.png"
    Image.new("RGB", (16, 16), (10, 20, 30)).save(path)
    return path


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(f): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


def _refused(capsys, run: Path, *args: str) -> str:
    """`recog ARGS` refuses with exit 2 and one line, leaving `run` as it was: that line."""
    before = _hashes(run)
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    said = [line for line in err.splitlines() if line.startswith("recog:")]
    assert code == 2 and len(said) == 1 and said[0].startswith("recog: error: "), (code, err)
    assert _hashes(run) == before
    return said[0]


def _edit_config(run: Path, old: str, new: str) -> None:
    text = (run / "config.yaml").read_text()
    assert old in text
    (run / "config.yaml").write_text(text.replace(old, new, 1))


def _poison_weights(path: Path, value: float) -> str:
    """Set one value of the first tensor of a safetensors file to `value`: its name."""
    with safe_open(str(path), "pt") as fh:
        metadata = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - not a dict
    name = sorted(k for k, t in tensors.items() if t.is_floating_point())[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = value
    save_file(tensors, str(path), metadata=metadata)
    return name


def _edit_checkpoint(run: Path, edit) -> None:
    saved = torch.load(run / "last.ckpt", weights_only=True)
    edit(saved)
    torch.save(saved, run / "last.ckpt")


# --------------------------------------------------------------- 1. binary bytes
@pytest.mark.parametrize("name", ["labels.json", "config.yaml"])
def test_binary_bytes_in_a_run_file_are_one_line_naming_it(capsys, run, image, name):
    (run / name).write_bytes(b"\x87\xff\x00\x9c" * 50)
    line = _refused(capsys, run, "predict", run, image)
    assert f"{run / name}: not a text file" in line


def test_a_huge_labels_json_is_refused_before_it_is_read(capsys, run, image):
    with open(run / "labels.json", "r+b") as fh:  # sparse: no disk used
        fh.truncate(MAX_JSON_BYTES + 1)
    line = _refused(capsys, run, "predict", run, image)
    assert f"{run / 'labels.json'}: larger than 16 MB" in line


@pytest.mark.parametrize("text", ["[]", '{"0": "a"}', "[1, 2]", "[" * 100_000])
def test_labels_json_that_is_not_a_list_of_names_is_one_line(capsys, run, image, text):
    (run / "labels.json").write_text(text)
    line = _refused(capsys, run, "predict", run, image)
    assert f"{run / 'labels.json'}: not" in line


def test_the_server_lists_a_run_whose_metrics_json_is_binary(run):
    from recog.serve.routes.models import model_info

    (run / "metrics.json").write_bytes(b"\x87\xff" * 20)
    assert model_info("run", recog.load(run), 4).metrics == {}


# ------------------------------------------------------------- 2. img_size range
@pytest.mark.parametrize("size", [100000, 16384, 0])
def test_an_img_size_out_of_range_in_config_yaml_is_refused_naming_it(capsys, run, image, size):
    _edit_config(run, "img_size: 16\n", f"img_size: {size}\n")
    line = _refused(capsys, run, "predict", run, image)
    assert f"{run / 'config.yaml'}: img_size must be at least 1 and at most 4096" in line


def test_a_null_where_config_yaml_needs_a_value_is_refused_naming_it(capsys, run, image):
    """Found by tests/fuzz/test_run_folder_fuzz.py: `data: null` was an AttributeError."""
    _edit_config(run, "data: digits\n", "data: null\n")
    line = _refused(capsys, run, "predict", run, image)
    assert f"{run / 'config.yaml'}: data must be given a value, not null" in line


# -------------------------------------------------- 3. config and weights disagree
def test_a_config_edited_to_another_task_is_refused_naming_both(capsys, run, image):
    _edit_config(run, "task: classify", "task: detect")
    line = _refused(capsys, run, "predict", run, image)
    assert f"{run / 'model.safetensors'} holds weights of a classify task" in line
    assert f"{run / 'config.yaml'} says task detect" in line


def test_a_config_edited_to_another_model_is_refused_naming_both(capsys, run, image):
    _edit_config(run, "model: cnn", "model: resnet18")
    line = _refused(capsys, run, "predict", run, image)
    assert f"{run / 'model.safetensors'} holds weights of a cnn model" in line
    assert f"{run / 'config.yaml'} says model resnet18" in line


def test_weights_of_another_shape_are_refused_naming_both_files(capsys, run, image):
    _edit_config(run, "width: 8", "width: 16")
    line = _refused(capsys, run, "predict", run, image)
    assert f"{run / 'model.safetensors'} does not fit the cnn that {run / 'config.yaml'}" in line
    assert "size mismatch" in line


def test_a_config_whose_task_is_not_its_models_is_refused_without_metadata(run):
    """A foreign weights file (no recog metadata) still meets the task check."""
    path = run / "model.safetensors"
    with safe_open(str(path), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - not a dict
    save_file(tensors, str(path))
    _edit_config(run, "task: classify", "task: segment")
    with pytest.raises(RecogError, match="config.yaml: model cnn is a classify model, not segment"):
        recog.load(run)


# ------------------------------------------------------------ 4. non-finite weights
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("command", ["predict", "export", "resume"])
def test_non_finite_weights_are_refused_naming_the_tensor(capsys, run, image, value, command):
    name = _poison_weights(run / "model.safetensors", value)
    args = {
        "predict": ["predict", run, image],
        "export": ["export", run],
        "resume": ["train", "--resume", run, "--epochs", "2"],
    }[command]
    line = _refused(capsys, run, *args)
    assert f"{run / 'model.safetensors'}: tensor {name!r} is not finite" in line
    assert not (run / "export").exists()


@pytest.mark.parametrize("part", ["model", "optimizer"])
def test_non_finite_tensors_in_last_ckpt_are_refused_on_resume(capsys, run, part):
    def poison(saved):
        tensors = saved["model"] if part == "model" else saved["optimizer"]["state"][0]
        key = sorted(k for k, t in tensors.items() if t.is_floating_point() and t.numel() > 1)[0]
        tensors[key] = torch.full_like(tensors[key], float("nan"))

    _edit_checkpoint(run, poison)
    line = _refused(capsys, run, "train", "--resume", run, "--epochs", "2")
    assert f"{run / 'last.ckpt'}: tensor '{part}/" in line and "is not finite" in line


# ------------------------------------------------------------ 5. flags on resume
@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--lr", "0.1"], "--lr cannot change on --resume; start a new run with --config "
                          "{cfg} --lr 0.1"),
        (["--model-args", "width=16"], "--model-args cannot change on --resume"),
        (["--data", "shapes"], "--data cannot change on --resume"),
        (["--augment", "none"], "--augment cannot change on --resume"),
        (["--config", "{cfg}"], "--config: not with --resume"),
        (["--exist-ok"], "--exist-ok: not with --resume"),
    ],
)  # fmt: skip
def test_a_setting_given_with_resume_is_refused_not_ignored(capsys, run, flags, said):
    cfg = run / "config.yaml"
    flags = [f.format(cfg=cfg) for f in flags]
    line = _refused(capsys, run, "train", "--resume", run, *flags)
    assert said.format(cfg=cfg) in line


def test_a_budget_given_with_resume_is_used_and_recorded(capsys, run):
    """`--epochs 2` trains the second epoch and config.yaml says so; a flag equal to the
    run's own value (`--lr` as recorded) is no change, and is accepted."""
    lr = recog.load(run).config.lr
    assert cli.main(["train", "--resume", str(run), "--epochs", "2", "--lr", str(lr)]) == 0
    cfg = recog.load(run).config
    assert cfg.epochs == 2 and cfg.lr == lr
    assert (run / "results.csv").read_text().count("\n") == 3  # header and two epochs


# ------------------------------------------------- 6. hostile config and counters
def test_a_yaml_alias_bomb_in_config_yaml_is_refused_on_resume(capsys, run):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    with open(run / "config.yaml", "a") as fh:
        fh.write("\n".join(lines) + "\n")
    line = _refused(capsys, run, "train", "--resume", run)
    assert f"{run / 'config.yaml'}: YAML aliases are not accepted" in line


@pytest.mark.parametrize(
    ("where", "value", "said"),
    [
        (("state", "epoch"), -3, "its epoch -3 is not from 0 to 2 (the run's epochs)"),
        (("state", "epoch"), 10**12, "its epoch 1000000000000 is not from 0 to 2"),
        (("state", "epoch"), "1", "its epoch is not what recog saves there ('1')"),
        (("state", "epoch"), 1.0, "its epoch is not what recog saves there (1.0)"),
        (("state", "best_epoch"), 9, "its best_epoch 9 is not from -1 to 1"),
        (("state", "bad_epochs"), -1, "its bad_epochs -1 is not from 0 to 1"),
        (("state", "best"), float("nan"), "its best is NaN"),
        (("state", "seconds"), float("inf"), "its seconds is not a time"),
        (("scheduler", "last_epoch"), -10**9, "its scheduler last_epoch -1000000000 is not"),
        (("scheduler", "last_epoch"), 10**15, "its scheduler last_epoch 1000000000000000 is not"),
        (("scheduler", "_step_count"), "x", "its scheduler _step_count is not a whole number"),
    ],
)  # fmt: skip
def test_checkpoint_counters_out_of_range_are_refused_naming_the_field(
    capsys, run, where, value, said
):
    def edit(saved):
        saved[where[0]][where[1]] = value

    _edit_checkpoint(run, edit)
    line = _refused(capsys, run, "train", "--resume", run, "--epochs", "2")
    assert f"{run / 'last.ckpt'}: {said}" in line


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_last_ckpt_is_one_line(capsys, run, damage):
    data = (run / "last.ckpt").read_bytes()
    broken = data[: len(data) // 3] if damage == "truncated" else bytes(range(256)) * 20
    (run / "last.ckpt").write_bytes(broken)
    line = _refused(capsys, run, "train", "--resume", run)
    assert f"{run / 'last.ckpt'}: not a loadable recog checkpoint" in line

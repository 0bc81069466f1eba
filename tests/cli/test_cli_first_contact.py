"""A new user's first minutes (issue 17): `--help` at once, `train --help` that explains itself,
and a training run whose terminal output reads as a table with a start and an end."""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from helpers import record

from recog import cli
from recog.cli import train_options
from recog.config import TrainConfig
from recog.engine.logging import EpochTable
from recog.names import TaskName

SRC = Path(cli.__file__).resolve().parents[2]

#: what parsing must not import: each costs seconds (torch alone is most of the 8 s
#: `recog --help` took before) and none is needed to print a help text
HEAVY = ("torch", "torchvision", "timm", "fastapi", "uvicorn", "sqlalchemy", "numpy", "PIL",
         "sklearn", "matplotlib", "onnxruntime", "rich")  # fmt: skip


def _subcommands(parser: argparse.ArgumentParser) -> list[list[str]]:
    """Every command and nested action, as argv prefixes: [["train"], ["data", "check"], ...]."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append([name])
                found += [[name, *rest] for rest in _subcommands(sub)]
    return found


def _train_parser() -> argparse.ArgumentParser:
    return dict(_named_subparsers(cli.build_parser()))["train"]


def _named_subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


# ------------------------------------------------------------------ help without torch
def test_every_help_imports_nothing_heavy():
    """`recog --help` and each subcommand's `--help` in a fresh interpreter: after each, none
    of the heavy libraries is loaded (deterministic, where a stopwatch would not be)."""
    commands = [[], *_subcommands(cli.build_parser())]
    assert ["train"] in commands and ["data", "check"] in commands and ["serve"] in commands
    script = f"""
import json, sys
from recog.cli import main
heavy = {HEAVY!r}
for argv in {commands!r}:
    try:
        main([*argv, "--help"])
    except SystemExit as exc:
        assert exc.code == 0, (argv, exc.code)
    loaded = [m for m in heavy if m in sys.modules]
    if loaded:
        print(json.dumps({{"argv": argv, "loaded": loaded}}))
        break
else:
    print(json.dumps({{"argv": None, "loaded": []}}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    assert verdict == {"argv": None, "loaded": []}, verdict


def test_python_m_recog_help_imports_no_torch():
    """The real entry (`python -m recog --help`), measured by the interpreter's import log."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "recog", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "--epochs" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "recog.cli" in imported and "recog.config" in imported  # the log is real
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


# ------------------------------------------------------------------ train --help
def test_train_help_is_grouped_and_every_option_explains_itself_and_its_default():
    from recog.config import GROUPS, RECORD_ONLY

    parser = _train_parser()
    text = parser.format_help()
    for title in GROUPS:
        assert f"\n{title}:\n" in text, title
    config_dests = {f.name for f in dataclasses.fields(TrainConfig)} - RECORD_ONLY
    seen = set()
    for action in parser._actions:
        assert action.help and action.help != argparse.SUPPRESS, action.option_strings
        if action.dest in config_dests:
            seen.add(action.dest)
            assert "(default: " in action.help, action.option_strings
    assert seen == config_dests  # no field dropped
    # a default the recipe resolves says so; a fixed one shows its value
    helps = {a.dest: a.help for a in parser._actions}
    assert "default: from the data" in helps["img_size"]
    assert "default: from the data" in helps["batch_size"]
    assert helps["momentum"].endswith("(default: 0.9)")
    assert helps["seed"].endswith("(default: 0)")
    assert helps["optimizer"].endswith("(default: adamw)")
    assert helps["deterministic"].endswith("(default: off)")


def test_train_help_states_the_time_cap_the_recipe_uses():
    from recog.recipe import DEFAULT_TIME_CAP

    helps = {a.dest: a.help for a in _train_parser()._actions}
    assert f"{DEFAULT_TIME_CAP // 60} min" in helps["epochs"]


def test_fixed_vocabularies_are_choices():
    actions = {a.dest: a for a in _train_parser()._actions}
    assert actions["task"].choices == [str(t) for t in TaskName]
    assert actions["optimizer"].choices == ["sgd", "adamw"]
    assert actions["amp"].choices == ["auto", "on", "off"]
    assert actions["adv_train"].choices == ["none", "pgd", "fgsm-rs", "trades"]
    assert "recog models" in actions["model"].help


def test_an_unknown_task_is_refused_by_the_parser_with_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--task", "classfy"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'classfy'" in err and "classify" in err


def test_every_field_is_an_option_with_a_heading_or_a_record_of_the_run():
    """An option is declared once, in recog.config: a field with no declaration (no help, no
    heading) is a record of the run, and those are named; an unknown heading is refused."""
    from recog.config import RECORD_ONLY, option

    undeclared = {f.name for f in dataclasses.fields(TrainConfig) if "option" not in f.metadata}
    assert undeclared == RECORD_ONLY
    with pytest.raises(ValueError, match="not one of GROUPS"):
        option(0, group="no such heading", help="x")


def test_the_flags_are_the_declarations():
    """What --help says of an option is what recog.config declares of it."""
    from recog.config import options

    helps = {a.dest: a.help for a in _train_parser()._actions}
    for f, opt in options():
        assert helps[f.name].startswith(opt.help), f.name
        if opt.rule:
            assert helps[f.name].endswith(f"(default: {opt.rule})"), f.name


def test_confidence_choices_match_the_library():
    from recog.cli import confidence
    from recog.confidence.ood import DEFAULT_SCORE, FALLBACK_SCORE, SCORES

    assert confidence.SCORES == SCORES and confidence.DEFAULT_SCORE == DEFAULT_SCORE
    assert confidence.FALLBACK_SCORE == FALLBACK_SCORE


# ------------------------------------------------------------------ shell completion
def _complete(line: str, tmp_path: Path) -> list[str]:
    out = tmp_path / "completions"
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "_ARGCOMPLETE": "1",
           "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line, "COMP_POINT": str(len(line)),
           "COMP_TYPE": "9", "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "recog"], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return sorted(c.strip() for c in out.read_text().split("\n") if c.strip())


def test_tab_completes_commands_options_and_choices(tmp_path):
    assert _complete("recog tr", tmp_path) == ["train"]
    assert _complete("recog train --warm", tmp_path) == ["--warmup-epochs"]
    assert _complete("recog train --task ", tmp_path) == sorted(str(t) for t in TaskName)


def test_model_completion_lists_the_registry():
    from recog.models.factory import list_models

    names = train_options._model_names()
    assert set(list_models(None)) <= set(names) and "cnn" in names


# ------------------------------------------------------------------ the epoch table
def test_the_epoch_table_prints_its_header_once_and_aligned_rows():
    table = EpochTable("map", val_loss=None, epochs=12)
    rows = [
        {"epoch": e + 1, "lr": 0.01 / (e + 1), "seconds": 12.25, "train_images_per_second": 80.4,
         "train_loss": 2.5 - e, "train_loss_box": 1.25, "map": 0.1 * e, "map50": 0.3}
        for e in range(3)
    ]  # fmt: skip
    lines = [line for e, row in enumerate(rows) for line in table.lines(e, 12, row)]
    assert len(lines) == 4  # one header, three rows
    assert lines[0].split() == ["epoch", "train_loss", "train_loss_box", "map", "lr", "img/s",
                                "sec"]  # fmt: skip
    assert lines[1].split() == ["1/12", "2.5000", "1.2500", "0.0000", "1.00e-02", "80", "12.2"]
    assert len({len(line) for line in lines}) == 1  # right-aligned columns
    assert lines[3].split()[0] == "3/12"
    # a value missing from a later row is a dash, not a shifted column
    later = table.lines(3, 12, {**rows[0], "train_loss_box": None})[0]
    assert later.split()[2] == "-" and len(later) == len(lines[0])


def test_the_epoch_table_shows_robust_and_distillation_columns_when_the_run_has_them():
    table = EpochTable("top1", val_loss="nll", epochs=2)
    row = {"epoch": 1, "lr": 1e-3, "seconds": 3.0, "train_images_per_second": 50.0,
           "train_loss": 0.9, "train_task_loss": 0.7, "train_kd": 1.1, "nll": 0.8,
           "top1": 0.75, "robust_top1": 0.31, "robust_nll": 2.0}  # fmt: skip
    header, first = table.lines(0, 2, row)
    assert header.split() == ["epoch", "train_loss", "train_task_loss", "train_kd", "val_nll",
                              "top1", "robust_top1", "lr", "img/s", "sec"]  # fmt: skip
    assert first.split()[5:7] == ["0.7500", "0.3100"]


# ------------------------------------------------------------------ a tiny run, end to end
TINY = ["train", "--data", "digits", "--model", "cnn", "--model-args", "width=8",
        "--img-size", "16", "--epochs", "2", "--batch-size", "128"]  # fmt: skip
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE",
                                                          "COLUMNS", "LINES")}  # fmt: skip
    return {**env, "PYTHONPATH": str(SRC), "TERM": "xterm-256color", "OMP_NUM_THREADS": "2"}


def _check_run_output(text: str, out: Path) -> None:
    """Start block, the header once, a row per epoch, the best epoch and the next commands."""
    lines = text.splitlines()
    block = "\n".join(lines[: lines.index("  run        " + str(out)) + 1])
    for key in ("task       classify", "model      cnn at 16 px", "device     cpu"):
        assert key in block, block
    assert re.search(r"data       digits: \d+ train / \d+ val images, 10 classes", block), block
    assert re.search(r"budget     2 epochs of \d+ steps = \d+ steps \(batch 128\)", block), block
    headers = [i for i, line in enumerate(lines) if line.split()[:2] == ["epoch", "train_loss"]]
    assert len(headers) == 1, text
    head = lines[headers[0]]
    assert head.split() == ["epoch", "train_loss", "val_nll", "top1", "lr", "img/s", "sec"]
    rows = lines[headers[0] + 1 : headers[0] + 3]
    assert [row.split()[0] for row in rows] == ["1/2", "2/2"], text
    assert all(len(row) == len(head) for row in rows), (head, rows)
    metrics = json.loads((out / "metrics.json").read_text())
    best = metrics["best_epoch"]
    top1 = float(rows[best - 1].split()[3])
    assert top1 == pytest.approx(metrics["top1"], abs=1e-4)  # the row is the run's number
    assert f"best epoch {best} of 2: top1 {metrics['top1']:.4f}" in text
    assert f"weights: {out / 'model.safetensors'}" in text and (out / "model.safetensors").is_file()
    assert f"report: {out / 'report.html'}" in text and (out / "report.html").is_file()
    for command in (f"recog val {out}", f"recog predict {out} IMAGES", f"recog export {out}",
                    f"recog serve {out}"):  # fmt: skip
        assert command in text, command


def test_a_run_off_a_terminal_prints_plain_lines(tmp_path):
    """stdout and stderr are pipes (CI, logs): the same content, no bar, no control code."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "recog", *TINY, "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stderr + proc.stdout
    assert "\r" not in text and not ANSI.search(text) and "━" not in text
    _check_run_output(text, out)


def _run_in_pty(argv: list[str], env: dict[str, str], cols: int = 150) -> tuple[int, str]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=600), b"".join(chunks).decode("utf-8", "replace")


def _screen(raw: str) -> list[str]:
    """What a terminal shows after `raw`: the cursor moves (CR, LF, up, down, column) and line
    erases rich's live display uses; colours are dropped."""
    lines: list[list[str]] = [[]]
    row = col = 0
    for token in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", raw):
        if not token:
            continue
        if token == "\r":
            col = 0
        elif token == "\n":
            row += 1
        elif token.startswith("\x1b["):
            final, arg = token[-1], token[2:-1]
            if final == "A":
                row = max(0, row - int(arg or 1))
            elif final == "B":
                row += int(arg or 1)
            elif final == "G":
                col = int(arg or 1) - 1
            elif final == "K":
                lines += [[] for _ in range(row + 1 - len(lines))]
                lines[row] = [] if arg == "2" else lines[row][:col]
        else:
            lines += [[] for _ in range(row + 1 - len(lines))]
            line = lines[row]
            for ch in token:
                line += [" "] * (col - len(line))
                if col < len(line):
                    line[col] = ch
                else:
                    line.append(ch)
                col += 1
        lines += [[] for _ in range(row + 1 - len(lines))]
    return ["".join(line).rstrip() for line in lines]


# slow (12 s, a pseudo-terminal run); the plain-lines case above stays in the default suite
@pytest.mark.slow
def test_a_run_on_a_terminal_leaves_no_bar_under_its_lines(tmp_path):
    """On a terminal the bars are drawn (the raw output has them) and gone at the end: what the
    screen shows is the same clean table, no row written over a leftover validation bar."""
    out = tmp_path / "run"
    code, raw = _run_in_pty([sys.executable, "-m", "recog", *TINY, "--out", str(out)], _env())
    assert code == 0, raw[-3000:]
    assert "validate" in raw and "━" in raw  # the bars were live
    shown = _screen(raw)
    assert not [line for line in shown if "validate" in line or "━" in line], "\n".join(shown)
    _check_run_output("\n".join(shown), out)


def test_the_start_block_states_a_time_budget_and_the_global_batch():
    from recog.recipe import Resolution, start_block
    from recog.types import DataFacts

    facts = DataFacts(task=TaskName.CLASSIFY, name="mushrooms", n_train=1000, n_val=250,
                      class_names=("a", "b", "c"), median_side=300, median_long_side=400)  # fmt: skip
    cfg = record(model="resnet18", img_size=128, batch_size=16, accumulate=2, time=600.0,
                 epochs=40, steps=640, lr=0.001, weight_decay=0.05, schedule="cosine",
                 warmup_epochs=1.0, augment="standard", label_smoothing=0.1)  # fmt: skip
    lines = start_block(facts, Resolution(cfg, ["a reason"], 40, frozenset()), "runs/x",
                        device="cuda", world_size=2)  # fmt: skip
    block = dict((line[2:13].strip(), line[13:]) for line in lines[1:])
    assert block["data"] == "mushrooms: 1000 train / 250 val images, 3 classes"
    # 1000 images / (16 x 2 processes) = 32 batches, 2 a step: 16 steps an epoch
    assert block["budget"] == (
        "10 min of training, at most 40 epochs of 16 steps (batch 16 x 2 processes, "
        "2 batches a step)"
    )
    assert block["why"] == "a reason" and block["run"] == "runs/x"


def test_every_option_of_every_subcommand_has_help_and_shows_its_default():
    """Not only train: predict, serve, data ... (help_texts.finish fills what is left bare)."""
    from recog.cli import build_parser

    bare, hidden_default = [], []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    walk(subparser, f"{name} {sub}")
            elif action.dest != "help":
                where = f"{name} {'/'.join(action.option_strings) or action.dest}"
                if not action.help:
                    bare.append(where)
                real = action.default not in (None, False, [], argparse.SUPPRESS)
                if real and "default" not in action.help:
                    hidden_default.append(where)

    walk(build_parser(), "recog")
    assert bare == [] and hidden_default == []
    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    assert "--port PORT" in help_text and "(default: 8000)" in help_text

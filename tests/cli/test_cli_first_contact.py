"""A new user's first minutes (issue 17): `--help` at once, `train --help` that explains itself,
and a training run whose terminal output reads as a table with a start and an end."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from recog import cli
from recog.cli import train_options
from recog.config import TrainConfig
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
    parser = _train_parser()
    text = parser.format_help()
    for title, _ in train_options.GROUPS:
        assert f"\n{title}:\n" in text, title
    assert train_options.FALLBACK_GROUP not in text  # every field of today has a heading
    config_dests = {f.name for f in dataclasses.fields(TrainConfig)} - train_options.HIDDEN
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


def test_a_field_added_later_still_gets_a_flag_with_its_default():
    """A field no group names (another helper's, say) lands under "other options"."""

    @dataclasses.dataclass
    class Later(TrainConfig):
        log: str = "none"

    parser = argparse.ArgumentParser()
    train_options.add_arguments(parser, Later)
    groups = {g.title: g for g in parser._action_groups}
    other = [a.dest for a in groups[train_options.FALLBACK_GROUP]._group_actions]
    assert other == ["log"]
    ns = parser.parse_args(["--log", "tensorboard", "--epochs", "3"])
    assert train_options.overrides(ns, Later) == {"log": "tensorboard", "epochs": 3}
    action = next(a for a in parser._actions if a.dest == "log")
    assert action.help.endswith("(default: none)")


def test_confidence_choices_match_the_library():
    from recog.cli import confidence
    from recog.confidence.ood import DEFAULT_SCORE, SCORES

    assert confidence.SCORES == SCORES and confidence.DEFAULT_SCORE == DEFAULT_SCORE


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

"""What every subcommand's `--help` says about the options that recur across them.

`recog train` writes its own help from the options `recog.config` declares; the
other subcommands declare their options where they are parsed, and `finish`
then walks the whole parser once: an option declared without help gets the
common text for its name here, and every option with a real default says it
("(default: ...)"), so no `--help` leaves a user guessing.  A test checks that
nothing is left without help.
"""

from __future__ import annotations

import argparse

#: help for options (by dest) that several subcommands share or declare bare
COMMON = {
    "run": "a run directory written by `recog train`",
    "runs": "run directories (or exported model files) to serve, each under its run's name",
    "paths": "images, folders, globs, videos, manifests (.csv/.parquet of paths) or fsspec URLs",
    "path": "the dataset: class folders, COCO, YOLO, VOC or image/mask folders",
    "src": "the dataset to read",
    "out": "where to write it",
    "device": "auto, cpu, cuda, cuda:N or mps (auto: cuda, then mps, then cpu)",
    "top_k": "classes listed per image (classification)",
    "batch_size": "images per forward pass",
    "task": "only this task's models",
    "to": "the format to write",
    "val_split": "fraction of the images held out for validation",
    "seed": "random seed (a rerun with the same seed repeats the result)",
    "host": "address to listen on (0.0.0.0: every interface)",
    "port": "TCP port to listen on",
    "log_level": "server log verbosity",
    "no_access_log": "do not log one line per request",
    "format": "what to export to",
}

_NO_DEFAULT = (None, False, [], argparse.SUPPRESS)


def finish(parser: argparse.ArgumentParser, skip: frozenset[str] = frozenset()) -> None:
    """Fill in missing help and show defaults in `parser` and its subcommands (not `skip`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if name not in skip:
                    finish(sub)
            continue
        if action.dest == "help" or action.help == argparse.SUPPRESS:
            continue
        if action.help is None:
            action.help = COMMON.get(action.dest, "")
        shown = "default" in action.help or "%(default)" in action.help
        if not shown and not any(action.default is v for v in _NO_DEFAULT) and action.default != []:
            action.help = f"{action.help} (default: %(default)s)".lstrip()

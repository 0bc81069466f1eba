"""The CLI's last line of defence: an unexpected exception is one line, a traceback only on asking."""

from __future__ import annotations

import errno

import pytest

from recog import cli


def _failing(exc: BaseException):
    def command(ns):
        raise exc

    return command


def test_an_unexpected_exception_is_one_line_and_exit_1(monkeypatch, capsys):
    monkeypatch.delenv("RECOG_DEBUG", raising=False)
    monkeypatch.setitem(cli.COMMANDS, "models", _failing(ValueError("bad shape (3, 4)")))
    assert cli.main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("recog: internal error: ValueError: bad shape (3, 4)")
    assert "--debug" in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(monkeypatch, how):
    monkeypatch.setitem(cli.COMMANDS, "models", _failing(ValueError("boom")))
    argv = ["models"]
    if how == "flag":
        argv = ["--debug", "models"]
    else:
        monkeypatch.setenv("RECOG_DEBUG", "1")
    with pytest.raises(ValueError, match="boom"):
        cli.main(argv)


def test_a_full_disk_names_the_file(monkeypatch, capsys):
    monkeypatch.delenv("RECOG_DEBUG", raising=False)
    full = OSError(errno.ENOSPC, "No space left on device", "runs/x/last.ckpt")
    monkeypatch.setitem(cli.COMMANDS, "models", _failing(full))
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == "recog: error: runs/x/last.ckpt: No space left on device\n"

"""`recog attack` end to end (in process, as `recog.cli.main`): the curve and its files, and
bad input as one line and exit 2."""

from __future__ import annotations

import json

import pytest

from recog.cli import main


def _cli(capsys, *args: str):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_attack_prints_the_curve_and_writes_robustness_json(digits, tmp_path, capsys):
    save = tmp_path / "rob"
    code, out, err = _cli(capsys, "attack", str(digits.run_dir), "--eps", "2/255,0.1",
                          "--images", "32", "--save-dir", str(save))  # fmt: skip
    assert code == 0, err
    record = json.loads((save / "robustness.json").read_text())
    assert record["attack"] == "pgd" and record["norm"] == "linf" and record["images"] == 32
    assert [round(r["eps"], 6) for r in record["robust"]] == [round(2 / 255, 6), 0.1]
    assert set(record["clean"]) == {"top1", "top5", "macro_f1"}
    assert "robustness.json" in out and "0.1 (25.5/255)" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--eps", "abc"], "--eps: expected a number"),
        (["--eps", "2"], "--eps: must be greater than 0 and at most 1"),
        (["--attack", "cw", "--norm", "linf"], "takes --norm l2"),
        (["--targeted", "nine"], "not a class of this model"),
        (["--images", "0"], "--images 0: must be from 1 to 100000"),
    ],
)
def test_bad_attack_input_is_one_line(digits, tmp_path, capsys, args, message):
    code, out, err = _cli(
        capsys, "attack", str(digits.run_dir), *args, "--save-dir", str(tmp_path / "x")
    )
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x" / "robustness.json").exists()


def test_the_cli_knows_the_same_attacks_as_the_package():
    from recog.cli.robust import ATTACKS, DEFAULT_EPS
    from recog.robust import ATTACKS as PACKAGE_ATTACKS
    from recog.robust import DEFAULT_EPS as PACKAGE_EPS

    assert ATTACKS == PACKAGE_ATTACKS
    assert [eval(e) for e in DEFAULT_EPS.split(",")] == list(PACKAGE_EPS)

"""The house stays one a person can carry on (issue 35), counted from the code with `ast`.

- The Task core (`recog.tasks.base.Task`) has at most 20 public members; what one
  feature alone asks of a task is a facet in that feature's package
  (`recog.tasks.facets`).
- No function in src/ is over 80 lines unless its docstring's first line says why
  one job needs it ("one job").
- No `# type: ignore` on a read of the run's config: the resolved record
  (`recog.config.TrainConfig`) has no Optional field, so a read needs no excuse.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import re
import tokenize
from pathlib import Path

import recog
from recog.config import TrainConfig

SRC = Path(recog.__file__).resolve().parent
CORE_LIMIT = 20
LONG = 80
#: the codes mypy gives a read of an Optional value; `attr-defined` and others are about
#: something else on the line (a dataset's method, say)
OPTIONAL_CODES = {"arg-type", "union-attr", "operator", "index", "call-overload", ""}
CONFIG_NAMES = ("cfg", "config", "self.cfg", "self.config", "rec.config", "self.run.config")


def core_members(source: str, name: str = "Task") -> list[str]:
    """Public names a class defines: its body's methods and attributes, and `self.x` that
    its `__init__` sets."""
    cls = next(
        n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef) and n.name == name
    )
    names: list[str] = []
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.append(node.name)
            if node.name == "__init__":
                names += [
                    t.attr
                    for sub in ast.walk(node)
                    if isinstance(sub, ast.Assign | ast.AnnAssign)
                    for t in (sub.targets if isinstance(sub, ast.Assign) else [sub.target])
                    if isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                    and t.value.id == "self"
                ]
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return sorted({n for n in names if not n.startswith("_")})


def long_functions(source: str, where: str) -> list[str]:
    """Functions over `LONG` lines whose docstring's first line does not say "one job"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            first = (ast.get_docstring(node) or "").strip().splitlines()[:1]
            if length > LONG and not (first and "one job" in first[0]):
                found.append(f"{where}:{node.lineno} {node.name} ({length} lines)")
    return found


def ignored_config_reads(source: str, where: str) -> list[str]:
    """`# type: ignore` comments (of the codes an Optional read gets) on lines that read a
    field of the run's config."""
    fields = "|".join(f.name for f in dataclasses.fields(TrainConfig))
    names = "|".join(re.escape(n) for n in CONFIG_NAMES)
    read = re.compile(rf"(?<![\w.])(?:{names})\.(?:{fields})\b")
    lines = source.splitlines()
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT or not tok.string.startswith("# type: ignore"):
            continue
        codes = re.findall(r"\[([^\]]*)\]", tok.string)
        code_set = {c.strip() for c in codes[0].split(",")} if codes else {""}
        row = tok.start[0]
        if code_set & OPTIONAL_CODES and read.search(lines[row - 1]):
            found.append(f"{where}:{row}")
    return found


def _sources() -> list[tuple[str, str]]:
    return [
        (str(p.relative_to(SRC.parent)), p.read_text(encoding="utf-8"))
        for p in sorted(SRC.rglob("*.py"))
    ]


def test_the_task_core_is_small():
    members = core_members((SRC / "tasks" / "base.py").read_text(encoding="utf-8"))
    assert len(members) <= CORE_LIMIT, f"{len(members)} public members: {members}"


def test_no_long_function_without_a_reason():
    found = [f for where, text in _sources() for f in long_functions(text, where)]
    assert not found, "functions over 80 lines whose first line gives no reason:\n" + "\n".join(
        found
    )


def test_no_type_ignore_on_a_config_read():
    found = [f for where, text in _sources() for f in ignored_config_reads(text, where)]
    assert not found, "type: ignore on reads of the run config: " + ", ".join(found)


def test_the_counters_count():
    """Each counter finds what it is for in a made-up module (and so could fail)."""
    cls = "class Task:\n    name = 'x'\n    _hidden = 1\n    def __init__(self):\n"
    cls += "        self.class_names = []\n        self._mean = 0\n    def loss(self): ...\n"
    assert core_members(cls) == ["class_names", "loss", "name"]
    body = "\n".join(f"    x = {i}" for i in range(LONG))
    assert long_functions(f"def f():\n    '''Says nothing.'''\n{body}\n", "m") == [
        "m:1 f (82 lines)"
    ]
    assert long_functions(f"def f():\n    '''Reads all (one job: why).'''\n{body}\n", "m") == []
    read = "n = int(cfg.img_size)  # type: ignore[arg-type]\n"
    assert ignored_config_reads(read, "m") == ["m:1"]
    other = "s.set_epoch(0, cfg.epochs)  # type: ignore[attr-defined]\n"
    assert ignored_config_reads(other, "m") == []

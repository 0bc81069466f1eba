"""Reading and writing YAML that came from outside: the one door for every YAML read.

A run's `config.yaml`, a YOLO `data.yaml`, the config inside an ONNX file's
metadata and `--model-args` are all text a user may have been handed.
PyYAML's `safe_load` runs no code, but it still expands aliases: a
"billion laughs" document of a few hundred bytes expands to gigabytes and
hung `--resume` until killed (issue 33).  recog never writes an alias (its
dumper below refuses to), so every read here refuses them outright, caps the
text's size before parsing and turns every way a document can be wrong
(bytes that are not UTF-8, a syntax error, nesting deep enough to exhaust
the stack, a value a constructor refuses) into one `RecogError` naming the
source.

Standard library and PyYAML only: the CLI parser reads configs through this
module and must not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from recog.errors import RecogError

#: the largest YAML file recog reads (a resolved config is about 2 KB; a
#: data.yaml with thousands of class names a few hundred KB)
MAX_YAML_BYTES = 4 * 1024 * 1024


class _AliasRefused(yaml.YAMLError):
    def __init__(self, line: int) -> None:
        super().__init__(f"YAML aliases are not accepted (line {line})")
        self.line = line


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that stops at the first alias (`*name`) instead of expanding it."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _AliasRefused(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


class _NoAliasDumper(yaml.SafeDumper):
    """SafeDumper that writes a shared object twice rather than as an anchor and an alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(value: Any) -> str:
    """`value` as YAML with no anchors or aliases (so `load_yaml_text` reads it back)."""
    return yaml.dump(value, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True)


def load_yaml_text(text: str | bytes, source: str, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """The YAML document in `text`; anything wrong with it is a RecogError naming `source`."""
    if len(text) > max_bytes:
        raise RecogError(
            f"{source}: YAML of {len(text)} bytes is larger than recog reads ({max_bytes})"
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise RecogError(f"{source}: not a text file (its bytes are not UTF-8)") from None
    if "\x00" in text:
        raise RecogError(f"{source}: not a text file (it holds NUL bytes)")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except _AliasRefused as exc:
        raise RecogError(f"{source}: {exc}; write the value out in full") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc).split("\n")[0]
        raise RecogError(f"{source}: malformed YAML{at} ({problem})") from None
    except RecursionError:
        raise RecogError(f"{source}: YAML nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a value the constructors refuse
        raise RecogError(f"{source}: malformed YAML ({str(exc).split(';')[0][:80]})") from None


def load_yaml_file(path: Path, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """The YAML document in the file `path`, read with the limits of `load_yaml_text`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise RecogError(
                f"{path}: YAML of {size} bytes is larger than recog reads ({max_bytes})"
            )
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise RecogError(
            f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})"
        ) from None
    return load_yaml_text(data, str(path), max_bytes)

"""Where `recog predict --out` writes as it goes, and what `--resume` finds there.

Parquet (`.parquet`): rows are buffered to a part of `part_rows` rows (a whole
number of batches) and each part is written to `<out>.parts/` whole (a temporary
name, then a rename), so a killed job leaves only complete parts.  `close`
joins the parts, one row group each, into `<out>` (again through a temporary
file and a rename) and removes the folder: a reader never sees a torn file, and
memory holds one part, whatever the number of images.  A Parquet file needs its
footer to be read, so writing `<out>` directly would lose everything to a kill.

JSON lines (`.jsonl`): one write and flush per batch; `--resume` keeps the
complete lines up to the last whole batch and cuts the rest.

`--resume` keeps whole batches only, so the images left start on a batch
boundary and form the same batches as an uninterrupted run: the same inputs to
the model, the same numbers out.  The job's settings (run, model, top-k, batch
size) are stored with the output (Parquet metadata, each JSON line's `run` and
`model`) and a resume with other settings is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from recog.batch.rows import SCHEMA, json_ready, to_table
from recog.errors import RecogError

OUT_SUFFIXES = (".parquet", ".jsonl")
#: rows in a Parquet part (rounded down to whole batches): what a kill can lose at most
PART_ROWS = 1024
META_KEY = b"recog"


def check_out(out: Path) -> None:
    if out.suffix not in OUT_SUFFIXES:
        raise RecogError(f"{out}: --out must end in {' or '.join(OUT_SUFFIXES)}")
    if not out.parent.is_dir():
        raise RecogError(f"{out.parent}: no such directory for --out")
    if out.exists() and not out.is_file():  # /dev/zero to --resume was read until killed
        raise RecogError(f"{out}: not a regular file (a device, a pipe or a folder); refused")


class ParquetSink:
    def __init__(self, out: Path, settings: dict[str, Any], *, resume: bool, batch_size: int):
        self.out = Path(out)
        self.parts = self.out.with_name(self.out.name + ".parts")
        self.settings = {k: str(v) for k, v in settings.items()}
        self.part_rows = batch_size * max(1, PART_ROWS // batch_size)
        self._buffer: list[dict[str, Any]] = []
        self._done: list[str] = []
        self.done_errors = 0  # rows of an earlier job with an `error`
        existing = [self.out] if self.out.exists() else []
        existing += sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []
        if existing and not resume:
            raise RecogError(
                f"{existing[0]}: already there (from an earlier job); --resume continues it, "
                "or choose another --out"
            )
        merged: set[str] = set()
        for path in existing:  # `<out>` first, then the parts in order
            paths, errors = self._read_done(path)
            if path == self.out:
                merged = set(paths)
            elif paths and paths[0] in merged:
                path.unlink()  # joined into `<out>` by a close the kill caught before cleaning up
                continue
            self._done += paths
            self.done_errors += errors
        for tmp in self.parts.glob("*.tmp") if self.parts.is_dir() else ():
            tmp.unlink()  # a part the kill caught half-written
        self._next = len(existing)

    def _read_done(self, path: Path) -> tuple[list[str], int]:
        """The paths a file holds and how many of its rows have an `error`."""
        try:
            pf = pq.ParquetFile(path)
            meta = json.loads((pf.schema_arrow.metadata or {}).get(META_KEY, b"{}"))
            table = pf.read(columns=["path", "error"])
            paths = table.column("path").to_pylist()
            errors = len(table) - table.column("error").null_count
        except (pa.ArrowInvalid, OSError, ValueError, KeyError) as exc:
            raise RecogError(f"{path}: not a readable recog output ({exc})") from None
        if not isinstance(meta, dict) or not all(isinstance(p, str) for p in paths):
            raise RecogError(f"{path}: not a readable recog output (damaged metadata or paths)")
        changed = [k for k, v in self.settings.items() if meta.get(k) != v]
        if changed:
            k = changed[0]
            raise RecogError(
                f"{path}: written with {k} {meta.get(k)!r}, this job has {self.settings[k]!r}; "
                "--resume needs the same settings (or choose another --out)"
            )
        return paths, errors

    def done(self) -> list[str]:
        """The paths already written (an earlier job's), in order."""
        return list(self._done)

    def _schema(self) -> pa.Schema:
        return SCHEMA.with_metadata({META_KEY: json.dumps(self.settings).encode()})

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._buffer += rows
        while len(self._buffer) >= self.part_rows:
            self._flush(self._buffer[: self.part_rows])
            self._buffer = self._buffer[self.part_rows :]

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.parts.mkdir(exist_ok=True)
        final = self.parts / f"part-{self._next:06d}.parquet"
        tmp = final.with_suffix(".tmp")
        pq.write_table(to_table(rows).cast(self._schema()), tmp)
        os.replace(tmp, final)
        self._next += 1

    def close(self) -> None:
        """The parts (and an earlier job's `<out>`) joined into `<out>`."""
        self._flush(self._buffer)
        self._buffer = []
        sources = [self.out] if self.out.exists() else []
        sources += sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []
        if sources == [self.out]:
            shutil.rmtree(self.parts, ignore_errors=True)
            return
        tmp = self.out.with_name(self.out.name + ".tmp")
        with pq.ParquetWriter(tmp, self._schema()) as writer:
            for source in sources:
                pf = pq.ParquetFile(source)
                for i in range(pf.num_row_groups):
                    writer.write_table(pf.read_row_group(i).cast(self._schema()))
        os.replace(tmp, self.out)
        shutil.rmtree(self.parts, ignore_errors=True)


class JsonlSink:
    def __init__(self, out: Path, settings: dict[str, Any], *, resume: bool, batch_size: int):
        self.out = Path(out)
        self.settings = settings
        self._done: list[str] = []
        self.done_errors = 0
        if self.out.exists() and not resume:
            raise RecogError(
                f"{self.out}: already there (from an earlier job); --resume continues it, "
                "or choose another --out"
            )
        if self.out.exists():
            self._done = self._keep_whole_batches(batch_size)
        self._file = self.out.open("a", encoding="utf-8")

    def _keep_whole_batches(self, batch_size: int) -> list[str]:
        with self.out.open("rb") as f:  # what the file held when opened: a bounded read
            data = f.read(os.fstat(f.fileno()).st_size)
        complete = data[: data.rfind(b"\n") + 1]
        lines = complete.splitlines(keepends=True)
        paths, errors = [], []
        for n, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("path", ""), str):
                # valid JSON of another shape ([1, 2], null) once failed inside --resume
                raise RecogError(f"{self.out}:{n}: not a JSON line of recog predict")
            for key in ("run", "model"):
                if row.get(key) != str(self.settings[key]):
                    raise RecogError(
                        f"{self.out}:{n}: written with {key} {row.get(key)!r}, this job has "
                        f"{self.settings[key]!r}; --resume needs the same settings"
                    )
            paths.append(row["path"])
            errors.append(row.get("error") is not None)
        # whole batches only: a torn last line and a short last batch are cut and predicted
        # again (a finished job's short last batch too: the same batch, the same numbers)
        keep = len(lines) - len(lines) % batch_size
        if keep < len(lines) or len(complete) < len(data):
            tmp = self.out.with_name(self.out.name + ".tmp")
            tmp.write_bytes(b"".join(lines[:keep]))
            os.replace(tmp, self.out)
        paths = paths[:keep]
        self.done_errors = sum(errors[:keep])
        return paths

    def done(self) -> list[str]:
        return list(self._done)

    def write(self, rows: list[dict[str, Any]]) -> None:
        # allow_nan=False: a NaN would be a line no JSON reader takes (make_row keeps them out)
        self._file.write("".join(json.dumps(json_ready(r), allow_nan=False) + "\n" for r in rows))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def open_sink(out: Path, settings: dict[str, Any], *, resume: bool, batch_size: int) -> Any:
    check_out(out)
    kind = ParquetSink if out.suffix == ".parquet" else JsonlSink
    return kind(out, settings, resume=resume, batch_size=batch_size)

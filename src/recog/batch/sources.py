"""Where `recog predict`'s images come from, and how one is read: files, folders, globs,
manifests (CSV or Parquet with a `path` column) and fsspec URLs.

Every image ends in `recog.data.images.decoded_from_bytes` (through `read_decoded`
for a local file), so a batch job reads through the same limits as training and the server:
the size is asked of the file system before the bytes are fetched.  fsspec
(already a dependency of torch) resolves `file://`, `memory://` and, where the
user has installed the package (s3fs, gcsfs, adlfs), `s3://`, `gs://`, `az://`.
A remote image is read in chunks that stop one past the byte cap (a server that
sends no size, or a wrong one, cannot make us hold more), within `READ_TIMEOUT_S`
in all (HTTP's total time-out, and a deadline between chunks): a server that
trickles a byte a second fails its image, not the job.
An input is named by a string: a local path as given, a URL as fsspec spells it,
and that string is what each output row's `path` holds.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from recog.data.images import (
    IMAGE_SUFFIXES,
    MAX_BYTES,
    Decoded,
    DecodeSize,
    byte_problem,
    decoded_from_bytes,
    find_images,
    read_decoded,
)
from recog.errors import RecogError

#: suffixes read as manifests (a list of images), not as images
MANIFEST_SUFFIXES = (".csv", ".parquet")
#: seconds one remote image (or listing) may take in all: a socket time-out alone restarts
#: with every byte, so a server sending one a second held a job for hours
READ_TIMEOUT_S = 60.0
#: bytes asked of a remote file at a time
_CHUNK = 1 << 20


def is_url(item: str) -> bool:
    return "://" in item


def _filesystem(url: str):  # noqa: ANN202 - fsspec's AbstractFileSystem, imported lazily
    import fsspec

    options = {}
    if url.split("://", 1)[0].lower() in ("http", "https"):
        import aiohttp

        options["client_kwargs"] = {"timeout": aiohttp.ClientTimeout(total=READ_TIMEOUT_S)}
    try:
        return fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as exc:  # an unknown protocol or its missing package
        raise RecogError(f"{url}: cannot open this URL ({str(exc).splitlines()[0]})") from None


def _url_images(url: str) -> list[str]:
    fs, root = _filesystem(url)
    try:
        if glob.has_magic(root):
            found = sorted(fs.glob(root))
        elif fs.isdir(root):
            found = sorted(fs.find(root))
        elif fs.isfile(root):
            return [url]
        else:
            raise RecogError(f"{url}: no such file or directory")
    except OSError as exc:
        raise RecogError(f"{url}: cannot list it ({exc})") from None
    images = [fs.unstrip_protocol(p) for p in found if p.lower().endswith(IMAGE_SUFFIXES)]
    if not images:
        raise RecogError(f"{url}: no image files found")
    return images


def _manifest_images(manifest: str) -> list[str]:
    """The `path` column of a CSV or Parquet file; relative paths are against its folder."""
    import pyarrow as pa

    try:
        if manifest.lower().endswith(".csv"):
            from pyarrow import csv

            table = csv.read_csv(manifest, convert_options=csv.ConvertOptions(
                column_types={"path": pa.string()}))  # fmt: skip
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(manifest, columns=None)
    except (pa.ArrowInvalid, OSError) as exc:
        raise RecogError(
            f"{manifest}: not a readable manifest ({str(exc).splitlines()[0]})"
        ) from None
    if "path" not in table.column_names:
        raise RecogError(
            f"{manifest}: a manifest needs a `path` column (it has {', '.join(table.column_names)})"
        )
    column = table.column("path")
    if column.null_count:
        raise RecogError(f"{manifest}: {column.null_count} rows have no path")
    base = Path(manifest).parent
    out = []
    for entry in column.to_pylist():
        entry = str(entry).strip()
        out.append(entry if is_url(entry) or Path(entry).is_absolute() else str(base / entry))
    if not out:
        raise RecogError(f"{manifest}: the manifest lists no images")
    return out


def list_inputs(items: Sequence[str]) -> list[str]:
    """Every image `items` name, in order: a manifest's rows, a folder's files (sorted,
    recursive), a glob's matches, a URL's objects.  One line names what is wrong."""
    out: list[str] = []
    for item in items:
        item = str(item)
        if is_url(item):
            out += _url_images(item)
        elif item.lower().endswith(MANIFEST_SUFFIXES) and Path(item).is_file():
            out += _manifest_images(item)
        else:
            out += [str(p) for p in find_images([item])]
    if not out:
        raise RecogError(f"{' '.join(items)}: no image files found")
    return out


def read_input(name: str) -> torch.Tensor:
    """(3, H, W) uint8 of one listed input, through `read_image`'s limits."""
    return read_decoded_input(name).pixels


def read_decoded_input(name: str, decode_size: DecodeSize | None = None) -> Decoded:
    """One listed input, no larger than `decode_size` asks (`recog.data.images.Decoded`)."""
    if not is_url(name):
        return read_decoded(Path(name), decode_size)
    fs, path = _filesystem(name)
    try:
        size = fs.size(path)
        problem = byte_problem(int(size)) if size is not None else None
        if problem:
            raise RecogError(f"{name}: {problem}")
        data = _read_capped(fs, path, name)
    except FileNotFoundError:
        raise RecogError(f"{name}: no such file") from None
    except TimeoutError:
        raise RecogError(f"{name}: not read within {READ_TIMEOUT_S:g} s; refused") from None
    except OSError as exc:
        raise RecogError(f"{name}: cannot read it ({exc})") from None
    return decoded_from_bytes(data, name, decode_size)


def _read_capped(fs, path: str, name: str) -> bytes:  # noqa: ANN001 - an fsspec filesystem
    """The file's bytes, read a chunk at a time, stopping one chunk past `MAX_BYTES` or at
    `READ_TIMEOUT_S`, whatever size the server declared (or did not)."""
    deadline = time.monotonic() + READ_TIMEOUT_S
    chunks: list[bytes] = []
    size = 0
    with fs.open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            size += len(chunk)
            if size > MAX_BYTES:
                raise RecogError(f"{name}: the image is over {MAX_BYTES:,} bytes (the limit)")
            if time.monotonic() > deadline:
                raise TimeoutError
            chunks.append(chunk)
    return b"".join(chunks)

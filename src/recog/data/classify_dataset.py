"""The classification Dataset, with an optional in-memory cache of decoded images.

With the cache on, each image is decoded once (two threads, with a progress
bar) and resized so its shorter side is a little above what the transforms
need; corrupt files are found there.  With it off, a cheap Pillow check at
build time finds unreadable files and decoding happens per item.  Corrupt
files are skipped and listed, or with `strict` raise at the first one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from recog.data.class_folders import Listing
from recog.data.images import read_image
from recog.errors import RecogError
from recog.types import Sample, Target

CACHE_AUTO_LIMIT = 20_000


def _cache_size(img_size: int, crop_pct: float) -> int:
    # 15% above the eval resize leaves room for random-resized crops.
    return round(img_size / crop_pct * 1.15)


def _shrink(image: torch.Tensor, side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    scale = side / min(h, w)
    return TF.resize(image, [max(1, round(h * scale)), max(1, round(w * scale))], antialias=True)


def _reason(exc: RecogError, path: Path) -> str:
    """The part of a `read_image` error after the file name."""
    return str(exc).removeprefix(f"{path}: ")


def _ends_with_eoi(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 64))
        return b"\xff\xd9" in f.read()


def _quick_check(path: Path) -> str | None:
    """Why `path` is not a usable image, or None (header check, no full decode)."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as img:
            fmt = img.format
            img.verify()
        # verify() reads no JPEG scan data, so a cut-off JPEG passes it; a missing
        # end-of-image marker near the end is the cheap tell, confirmed by a decode.
        if fmt == "JPEG" and not _ends_with_eoi(path):
            read_image(path)
        return None
    except RecogError as exc:
        return _reason(exc, path)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
        return str(exc).split("\n")[0] or exc.__class__.__name__


class ClassificationDataset(Dataset):
    """Samples of (transformed uint8 image, class index)."""

    def __init__(
        self,
        items: list,
        labels: list[int],
        transform: Callable[[torch.Tensor], torch.Tensor],
        sizes: list[tuple[int, int]] | None = None,
        names: list[str] | None = None,
    ) -> None:
        self.items, self.labels, self.transform = items, labels, transform
        self.sizes, self.names = sizes, names

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        item = self.items[index]
        if isinstance(item, torch.Tensor):
            image = item
            orig = self.sizes[index] if self.sizes else tuple(item.shape[-2:])
        else:
            image = read_image(item)
            orig = tuple(image.shape[-2:])
        return Sample(
            image=self.transform(image),
            target=Target(labels=torch.tensor(self.labels[index], dtype=torch.int64)),
            path=self.names[index] if self.names is not None else str(item),
            orig_size=(int(orig[0]), int(orig[1])),
        )


def materialize(
    listing: Listing, *, cache: bool, img_size: int, crop_pct: float, strict: bool, desc: str
) -> tuple[Listing, list[tuple[int, int]] | None, list[tuple[str, str]]]:
    """Decode (cache) or check every item.

    Returns the usable items (decoded tensors with the cache, else paths) with
    their labels and names, their original (H, W) sizes (cache only), and the
    skipped (path, reason) pairs.
    """
    skipped: list[tuple[str, str]] = []
    names = [listing.name(i) for i in range(len(listing.items))]
    paths = [i for i in listing.items if not isinstance(i, torch.Tensor)]
    if not paths:  # in-memory source (digits)
        if not cache:
            return Listing(listing.items, listing.labels, names=names), None, []
        side = _cache_size(img_size, crop_pct)
        return (
            Listing([_shrink(i, side) for i in listing.items], listing.labels, names=names),
            [tuple(i.shape[-2:]) for i in listing.items],
            [],
        )

    def load(path: Path) -> tuple[torch.Tensor | None, tuple[int, int] | None, str | None]:
        if not cache:
            return None, None, _quick_check(path)
        try:
            image = read_image(path)
        except RecogError as exc:
            return None, None, _reason(exc, path)
        return _shrink(image, _cache_size(img_size, crop_pct)), tuple(image.shape[-2:]), None

    from recog.console import progress_bar

    results = []
    with progress_bar(unit="img") as bar, ThreadPoolExecutor(max_workers=2) as pool:
        task = bar.add_task(f"{'decode' if cache else 'check'} {desc}", total=len(paths), info="")
        for result in pool.map(load, listing.items):
            results.append(result)
            bar.advance(task)
    items, labels, kept_names, sizes = [], [], [], []
    for path, label, name, (image, size, problem) in zip(
        listing.items, listing.labels, names, results, strict=True
    ):
        if problem is not None:
            if strict:
                raise RecogError(
                    f"{path}: {problem} (--strict stops at the first unreadable image)"
                )
            skipped.append((str(path), problem))
            continue
        items.append(image if cache else path)
        labels.append(label)
        kept_names.append(name)
        sizes.append(size)
    if skipped:
        for path, problem in skipped[:10]:
            print(f"recog: skipped {path}: {problem}", file=sys.stderr)
        if len(skipped) > 10:
            print(f"recog: skipped {len(skipped) - 10} more unreadable images", file=sys.stderr)
    return Listing(items, labels, names=kept_names), (sizes if cache else None), skipped

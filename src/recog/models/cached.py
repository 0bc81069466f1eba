"""The table's records of the files torchvision, timm and smp keep in their local caches, from the libraries' own metadata.

`--weights torchvision|timm|smp` names the file the library would have
downloaded for a model (or its encoder); recog never downloads, so the
record's locator (`recog.models.hub`) finds it in the local cache or says
where to put it.  Each record carries the preprocessing the library states
for the file: torchvision's weights enum (`transforms()`: mean, std, crop,
resize, interpolation; `meta`: ImageNet top-1 and parameters), timm's
`pretrained_cfg` (mean, std, input size, interpolation, crop_pct, licence; no
ImageNet figures: None).  smp keeps its encoders' preprocessing in each hub
repository's config.json, which recog never fetches: its ImageNet encoders are
torchvision's and Cadene's ports, trained with ImageNet's mean and std at
224 px, which the record states.

Names are the file's, as timm names its pretrained tags: `<torchvision
builder>.torchvision` (`resnet18.torchvision`, `ssdlite320_mobilenet_v3_large.torchvision`),
`<timm architecture>.timm` (`vit_tiny_patch16_224.timm`), `<smp encoder>.smp`
(`resnet18.smp`; smp's `tu-<arch>` encoders take timm's file, `<arch>.timm`).
Which library's file fits a model is the registry's (`ModelSpec.library_weights`);
`cache_records()` derives the list from it on demand, so importing recog
builds none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from recog.errors import RecogError
from recog.models.hub import HubFile, TorchHubFile
from recog.models.pretrained import PretrainedWeights

if TYPE_CHECKING:
    from recog.models.registry import ModelSpec

#: the `--weights` values that name a library's cache
LIBRARIES = ("torchvision", "timm", "smp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _rgb(values: Any) -> tuple[float, float, float]:
    red, green, blue = (float(v) for v in values)
    return red, green, blue


def torchvision_record(builder: str) -> PretrainedWeights:
    """torchvision's default weights of `builder`, in torch's hub cache."""
    import torchvision.models as tvm

    try:
        weights = tvm.get_model_weights(builder).DEFAULT
    except (ValueError, KeyError) as exc:
        raise RecogError(
            f"--weights torchvision: torchvision has no weights for {builder}"
        ) from exc
    transform = weights.transforms()
    crop = getattr(transform, "crop_size", None)
    resize = getattr(transform, "resize_size", None)
    metrics = weights.meta.get("_metrics", {}).get("ImageNet-1K", {})
    # a detector's transforms hold no normalisation: the model normalises inside, its input
    # is [0, 1] (the registry's detectors say mean 0, std 1 for the same reason)
    return PretrainedWeights(
        name=f"{builder}.torchvision",
        arch=builder,
        locator=TorchHubFile(weights.url, "torchvision"),
        mean=_rgb(getattr(transform, "mean", (0.0, 0.0, 0.0))),
        std=_rgb(getattr(transform, "std", (1.0, 1.0, 1.0))),
        input_size=int(crop[0]) if crop else 0,
        interpolation=transform.interpolation.value if hasattr(transform, "interpolation") else "",
        crop_pct=round(crop[0] / resize[0], 4) if crop and resize else 0.0,
        imagenet_top1=round(metrics["acc@1"] / 100, 5) if "acc@1" in metrics else None,
        params_m=round(weights.meta["num_params"] / 1e6, 1)
        if "num_params" in weights.meta
        else None,
        # torchvision states no licence per file (its weights come from many datasets)
        licence="",
        # torchvision's segmentation weights carry the auxiliary classifier recog builds without
        unused_ok=("aux_classifier.",),
    )


def timm_record(arch: str, kind: str = "timm") -> PretrainedWeights:
    """The file timm's `pretrained=True` loads for `arch` (its default tag)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise RecogError(f"--weights {kind}: timm has no pretrained weights for {arch}")
    if cfg.hf_hub_id:
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else HubFile.files
        locator: Any = HubFile(cfg.hf_hub_id, kind, files=files)
    else:  # older timm weights live only at a URL: torch's hub cache
        locator = TorchHubFile(cfg.url, kind)
    return PretrainedWeights(
        name=f"{arch}.timm",
        arch=arch,
        locator=locator,
        mean=_rgb(cfg.mean),
        std=_rgb(cfg.std),
        input_size=int(cfg.input_size[-1]),
        interpolation=cfg.interpolation or "",
        crop_pct=float(cfg.crop_pct or 0.0),
        licence=cfg.license or "",
    )


def smp_record(encoder: str, weights: str = "imagenet") -> PretrainedWeights:
    """The file smp's `encoder_weights=weights` loads for `encoder` (timm's for `tu-` ones)."""
    if encoder.startswith("tu-"):
        return timm_record(encoder[3:], kind="smp")
    from segmentation_models_pytorch.encoders import encoders

    settings = encoders.get(encoder, {}).get("pretrained_settings", {})
    if weights not in settings:
        known = ", ".join(settings) or "none"
        raise RecogError(
            f"--weights smp: encoder {encoder} has no {weights!r} weights in smp (it has: {known})"
        )
    repo, revision = settings[weights]["repo_id"], settings[weights].get("revision")
    return PretrainedWeights(
        name=f"{encoder}.smp",
        arch=encoder,
        locator=HubFile(repo, "smp", files=HubFile.files[:1], revision=revision),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        input_size=224,
        interpolation="bilinear",
        crop_pct=0.875,
    )


def library_record(spec: ModelSpec, kind: str, model_args: Mapping[str, Any]) -> PretrainedWeights:
    """The record `--weights kind` names for `spec` built with `model_args` (a U-Net's
    `encoder` argument names its encoder)."""
    if "smp" in spec.library_weights and kind in ("smp", "timm"):
        encoder = str(model_args.get(spec.library_arg) or spec.library_weights["smp"])
        if kind == "timm" and not encoder.startswith("tu-"):
            raise RecogError(
                f"--weights timm: {spec.name}'s encoder {encoder} is smp's own; use --weights smp "
                f"(or --model-args {spec.library_arg}=tu-<timm name>)"
            )
        return smp_record(encoder)
    arch = spec.library_weights.get(kind)
    if not arch:
        raise RecogError(
            f"--weights {kind}: {spec.name} is not built on {kind}'s weights "
            "(`recog weights` lists each model's; or a file's path)"
        )
    return torchvision_record(arch) if kind == "torchvision" else timm_record(arch)


def cache_records() -> dict[str, tuple[PretrainedWeights, list[str]]]:
    """Every library file a registered model (with its default arguments) can start from:
    record name -> (record, the models that use it)."""
    from recog.models.factory import get_spec, list_models

    found: dict[str, tuple[PretrainedWeights, list[str]]] = {}
    for name in list_models():
        spec = get_spec(name)
        for kind in spec.library_weights:
            try:
                record = library_record(spec, kind, {})
            except RecogError:  # the library has no weights for it (timm's seresnet18)
                continue
            found.setdefault(record.name, (record, []))[1].append(name)
    return found

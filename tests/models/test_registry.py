"""The registry and factory: names, specs, user errors, timm, model options and defaults.

Every model's build, training steps and round trip: tests/test_every_model.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from recog.errors import RecogError
from recog.models import registry
from recog.models.factory import create_model, get_spec, list_models

CLASSIFIERS = list_models("classify")


def test_registry_has_the_issue_models():
    expected = {
        "cnn",
        "alexnet",
        "vgg11",
        "vgg16",
        "resnet18",
        "resnet34",
        "resnet50",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "se_resnet18",
        "vit_tiny",
    }
    assert expected <= set(CLASSIFIERS)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_declares_its_head(name):
    # training, prediction and the round trip of every model: tests/test_every_model.py
    assert get_spec(name).head, f"{name} must declare its classifier head"


def test_registry_imports_no_model_family():
    """The families import the registry to register; only the factory imports them."""
    tree = ast.parse(Path(registry.__file__).read_text())
    modules = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in modules if m.startswith("recog.models")}, modules


def test_unknown_model_suggests_close_names():
    with pytest.raises(RecogError, match="did you mean.*resnet18"):
        get_spec("resnet19")


def test_timm_prefix_reaches_any_timm_model():
    model = create_model("timm:resnet10t", num_classes=5, img_size=32)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(RecogError, match="unknown timm model"):
        get_spec("timm:not_a_model_xyz")


def test_cnn_attention_variants():
    for attention in ("se", "cbam"):
        model = create_model("cnn", num_classes=4, img_size=32, attention=attention)
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_bad_model_argument_is_a_user_error():
    with pytest.raises(RecogError, match="--model-args wdith: model cnn has no such argument"):
        create_model("cnn", num_classes=4, img_size=32, wdith=3)


def test_model_training_defaults_fill_only_what_the_user_left_unset():
    from recog.api import resolve_config
    from recog.config import TrainRequest

    def resolved(**kw):
        return resolve_config(TrainRequest(**kw))[0].config

    unet = resolved(data="shapes", task="segment", model="unet")
    assert (unet.lr, unet.weight_decay) == (2e-3, 1e-4)  # unet's own
    mine = resolved(data="shapes", task="segment", model="unet", epochs=3, batch_size=4, lr=0.1)
    assert (mine.epochs, mine.batch_size, mine.lr) == (3, 4, 0.1)
    mask = resolved(data="shapes", task="segment", model="mask_rcnn")
    assert (mask.epochs, mask.batch_size, mask.lr) == (10, 4, 5e-4)
    # "auto" is left to recog too: Mask R-CNN turns mixed precision on, the user can say off
    assert mask.amp == "on"
    assert resolved(data="shapes", task="segment", model="mask_rcnn", amp="off").amp == "off"
    # on a CPU, `auto` waits for the timing probe (bf16 against float32: tests/test_recipe.py)
    assert resolved(data="digits", model="cnn").amp == "auto"


def test_models_command_lists_each_models_defaults():
    from helpers import run_cli

    proc = run_cli("models", "--task", "segment")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()}
    assert rows["unet"][1:5] == ["segment", "256px", "data", "data"]
    assert rows["mask_rcnn"][1:5] == ["segment", "512px", "10", "4"]
    assert "cnn" not in rows

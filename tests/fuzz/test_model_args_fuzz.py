"""Property-based fuzzing of `--model-args` (issue 33): random KEY=VALUE texts, parsed as the
CLI parses them, given to a few registered models.  Each either builds a model or is a
RecogError of one line; any other exception (a ValueError deep in a builder, a negative
tensor dimension) fails.  The counts are printed (`pytest -s`).
"""

from __future__ import annotations

import inspect

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from recog.cli.train_options import _parse_value
from recog.config import TrainRequest
from recog.errors import RecogError
from recog.models.factory import create_model, get_spec

FAST, DEEP = 40, 400
BUDGETS = [pytest.param(FAST, id="fast"), pytest.param(DEEP, id="deep", marks=pytest.mark.slow)]
#: registered models with typed arguments of their own (cnn, yolo_n, mask_rcnn's ranges,
#: fcn_resnet18's choices) and one that passes arguments on to timm (vit_tiny)
MODELS = ("cnn", "yolo_n", "fcn_resnet18", "vit_tiny")
#: names no builder takes, or that recog gives (img_size, num_classes)
OTHER_KEYS = ("img_size", "num_classes", "drop_rate", "nonsense", "")
VALUES = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from(
        [
            "0",
            "1",
            "2",
            "0.5",
            "0.0001",
            "1.25",
            "513",
            "4097",
            "9" * 30,
            "-0",
            "nan",
            "inf",
            "-inf",
            "1e309",
            "true",
            "none",
            "se",
            "cbam",
            "abc",
            "",
            "8",
            "16",
            "32",
            "1,2",
            "0x10",
        ]
    ),  # fmt: skip
    st.text(max_size=4),
)


def model_args(name: str) -> st.SearchStrategy[dict[str, str]]:
    """KEY=VALUE texts, the keys mostly the builder's own."""
    own = [k for k in inspect.signature(get_spec(name).builder).parameters
           if k not in ("num_classes", "img_size", "kwargs")]  # fmt: skip
    keys = st.one_of(st.sampled_from(own), st.sampled_from(own), st.sampled_from(OTHER_KEYS),
                     st.text(max_size=3))  # fmt: skip
    return st.dictionaries(keys, VALUES, max_size=2)


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("name", MODELS)
def test_model_args_build_or_refuse(name, budget):
    ran = {"examples": 0, "built": 0, "refused": 0}
    size = get_spec(name).min_img_size

    @settings(
        max_examples=budget,
        deadline=20_000,  # ms: the widest legal cnn takes seconds to initialize on 2 cores
        derandomize=budget == FAST,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(model_args(name))
    def fuzz(texts: dict[str, str]) -> None:
        ran["examples"] += 1
        args = {key: _parse_value(raw) for key, raw in texts.items()}  # as `--model-args` does
        try:
            # as every path builds: the run config first (CLI, API, config.yaml), then the model
            cfg = TrainRequest(model=name, model_args=args)
            model = create_model(name, num_classes=3, img_size=size, **cfg.model_args)
        except RecogError as exc:
            assert "\n" not in str(exc)
            ran["refused"] += 1
            return
        assert isinstance(model, nn.Module)
        ran["built"] += 1

    fuzz()
    print(f"{name}: {ran['examples']} examples, {ran['built']} built, {ran['refused']} refused")
    assert ran["refused"] > 0

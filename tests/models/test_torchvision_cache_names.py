"""`--weights torchvision` for models that wrap a torchvision model under another name: the
registry names torchvision's (`ModelSpec.library_weights`), so the cache file is found."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
import torchvision.models.detection as tvd

from recog.errors import RecogError
from recog.models.cached import torchvision_record
from recog.models.factory import create_model, get_spec, list_models
from recog.models.weights import load_pretrained


@pytest.mark.parametrize(
    "name", [n for n in list_models() if "torchvision" in get_spec(n).library_weights]
)
def test_every_wrapped_torchvision_model_names_torchvision_weights(name):
    spec = get_spec(name)
    weights = tvm.get_model_weights(spec.library_weights["torchvision"]).DEFAULT
    assert weights.url.startswith("https://")


def test_weights_torchvision_loads_a_detector_from_the_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    spec = get_spec("ssdlite")
    builder = spec.library_weights["torchvision"]
    with pytest.raises(RecogError, match="not in the local torch cache and recog never downloads"):
        torchvision_record(builder).path()
    # the file torchvision would have downloaded: its model with COCO's 91 classes
    torch.manual_seed(0)
    theirs = tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
    url = tvm.get_model_weights(builder).DEFAULT.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    path.parent.mkdir(parents=True)
    torch.save(theirs.state_dict(), path)
    model = create_model("ssdlite", num_classes=2)
    fresh = load_pretrained(model, spec, "torchvision")
    # the class head (91 classes there, 3 here) is fresh; everything else is the file's
    assert fresh and all(k.startswith("model.head.classification_head") for k in fresh)
    ours = model.state_dict()
    for key, tensor in theirs.state_dict().items():
        if f"model.{key}" not in fresh:
            assert torch.equal(ours[f"model.{key}"], tensor), key

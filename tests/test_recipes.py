"""The packaged real-competition recipes, `fathom train --list`, and the "no such config" message."""

import pytest

from fathom.config import load_config, resolve_config_path
from fathom.errors import FathomError

RECIPES = {
    "fathomnet_effb0": "efficientnet_b0",
    "fathomnet_r50": "resnet50",
    "fathomnet_d121": "densenet121",
}


@pytest.mark.parametrize("name, model", sorted(RECIPES.items()))
def test_recipes_are_pretrained_two_stage_ema_amp_auto_five_folds(name, model):
    cfg = load_config(name)
    assert cfg.name == name and cfg.model == model and cfg.pretrained is True
    assert cfg.img_size >= 224 and cfg.cache_size >= cfg.img_size
    assert 0 < cfg.stage1_epochs < cfg.epochs and cfg.ema and cfg.amp == "auto"
    assert cfg.channels_last and cfg.n_folds == 5
    # the EMA warm-up must leave the average following the weights in a ~1,100-step run:
    # timm's warm-up decay at the last step stays under the cap
    steps = cfg.epochs * (5950 * 4 // 5) // cfg.batch_size
    assert 1 - (1 + steps) ** (-2 / 3) < cfg.ema_decay


def test_train_list_shows_the_recipes(run_cli):
    code, out, _ = run_cli("train", "--list")
    assert code == 0
    for name in RECIPES:
        assert name in out
    assert "default" in out and "mobilenet" in out


def test_no_such_config_names_the_paths_it_tried_without_garbling_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FathomError) as err:
        resolve_config_path("configs/effb0.toml")
    assert "tried configs/effb0.toml;" in str(err.value)
    assert "configs/configs" not in str(err.value) and ".toml.toml" not in str(err.value)
    with pytest.raises(FathomError, match=r"tried configs/effb0.toml, .*/configs/effb0.toml;"):
        resolve_config_path("effb0")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.toml").write_text("epochs = 2\n")
    assert resolve_config_path("mine.toml") == tmp_path.joinpath(
        "configs", "mine.toml"
    ).relative_to(tmp_path)
    assert load_config("mine").epochs == 2


@pytest.mark.parametrize("name", ["fathomnet_effb0", "fathomnet_r50", "fathomnet_d121"])
def test_recipes_adopt_the_lever_the_ablation_supported(name):
    from fathom.config import load_config

    cfg = load_config(name)
    assert cfg.supercat_weight > 0 and 0 < cfg.supercat_rank <= 1
    assert cfg.crop_rate == 0 and cfg.mixup == 0 and cfg.tiles == 0  # those did not pay

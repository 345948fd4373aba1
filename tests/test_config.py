import json

import pytest

from fathom.cli import main
from fathom.config import TrainConfig, apply_overrides, config_differences, load_config
from fathom.errors import FathomError


def test_default_config_is_the_packaged_file_and_named_after_it():
    cfg = load_config("default")
    assert cfg.name == "default"
    assert cfg.model == "fathom_cnn" and cfg.task == "multilabel"


def test_overrides_are_parsed_to_each_fields_type():
    cfg = apply_overrides(
        TrainConfig(),
        [
            "lr=1e-4",
            "epochs=3",
            "ema=true",
            "zoom=0.9,1.1",
            "holdout_categories=4,7",
            "pretrained=w/r50.pth",
        ],
    )
    assert cfg.lr == 1e-4 and isinstance(cfg.lr, float)
    assert cfg.epochs == 3 and cfg.ema is True
    assert cfg.zoom == (0.9, 1.1)
    assert cfg.holdout_categories == (4, 7)
    assert cfg.pretrained == "w/r50.pth"
    assert apply_overrides(cfg, ["pretrained=true"]).pretrained is True


@pytest.mark.parametrize(
    "override, message",
    [
        ("lrr=1e-3", "unknown key 'lrr' (did you mean 'lr'?)"),
        ("epochs=two", "epochs = 'two' is not an integer"),
        ("ema=maybe", "is not true or false"),
        ("zoom=0.9", "2 numbers separated by a comma"),
        ("loss=ce", "loss 'ce' is not for multilabel"),
        ("stage1_epochs=99", "stage1_epochs must be in [0, epochs)"),
        ("lr", "expected key=value"),
    ],
)
def test_bad_overrides_are_errors(override, message):
    with pytest.raises(FathomError, match=None) as err:
        apply_overrides(TrainConfig(), [override])
    assert message in str(err.value)


def test_toml_file_names_the_run_and_an_unknown_key_names_its_line(tmp_path):
    good = tmp_path / "r10t_ema.toml"
    good.write_text('model = "resnet10t"\nema = true\nzoom = [0.9, 1.1]\n')
    cfg = load_config(str(good), ["lr=0.01"])
    assert (cfg.name, cfg.model, cfg.ema, cfg.zoom, cfg.lr) == (
        "r10t_ema",
        "resnet10t",
        True,
        (0.9, 1.1),
        0.01,
    )
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "resnet10t"\n\nbatchsize = 4\n')
    with pytest.raises(
        FathomError,
        match=r"bad.toml, line 3: unknown key 'batchsize' \(did you mean 'batch_size'\?\)",
    ):
        load_config(str(bad))


def test_config_round_trips_through_json_and_runtime_keys_are_not_differences():
    cfg = TrainConfig(holdout_categories=(3,), zoom=(0.7, 1.3))
    again = json.loads(json.dumps(cfg.to_dict()))
    assert config_differences(cfg.to_dict(), again) == []
    assert config_differences(cfg.to_dict(), cfg.replace(num_workers=9, lr=0.5).to_dict()) == ["lr"]


def test_cli_reports_an_unknown_override_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "default", "--fold", "0", "bogus=1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'bogus'" in err


def test_tta_is_a_prediction_time_choice_not_part_of_the_runs_identity():
    cfg = TrainConfig()
    assert config_differences(cfg.to_dict(), cfg.replace(tta=True).to_dict()) == []
    assert config_differences(cfg.to_dict(), cfg.replace(tta=True, seed=1).to_dict()) == ["seed"]


def test_a_run_saved_before_a_key_existed_is_the_same_config():
    """A config.json without a newer key trained with that key's default: resuming it under
    this fathom is not "another config"; a non-default value still is."""
    from dataclasses import asdict

    from fathom.config import TrainConfig, config_differences

    new = asdict(TrainConfig())
    old = {k: v for k, v in new.items() if k not in ("mixup", "crop_rate", "supercat_weight")}
    assert config_differences(old, new) == []
    assert config_differences(old, {**new, "mixup": 0.4}) == ["mixup"]

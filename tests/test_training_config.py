"""TrainerConfig: defaults, TOML reading, and clear errors for unknown keys and wrong types."""

import dataclasses

import pytest

from minroots.training import TrainerConfig, load_toml
from minroots.training.config import check_fields


def test_defaults_are_valid_and_json_able():
    cfg = TrainerConfig()
    d = cfg.to_dict()
    assert d["betas"] == [0.9, 0.99]
    assert TrainerConfig.from_dict(d) == cfg  # round trip through plain data


def test_from_toml_reads_the_train_table(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        "[model]\nn_layer = 2\n\n[train]\nmax_steps = 7\nlr = 1\nbetas = [0.8, 0.9]\n"
        'schedule = "constant"\n',
        encoding="utf-8",
    )
    cfg = TrainerConfig.from_toml(path)
    assert cfg.max_steps == 7
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)  # an int is a valid float
    assert cfg.betas == (0.8, 0.9)
    assert cfg.schedule == "constant"


def test_from_toml_without_a_train_table_reads_the_whole_file(tmp_path):
    path = tmp_path / "flat.toml"
    path.write_text("batch_size = 3\n", encoding="utf-8")
    assert TrainerConfig.from_toml(path).batch_size == 3


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("[train]\nlrr = 0.1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown key 'lrr' \(did you mean 'lr'\?\)") as info:
        TrainerConfig.from_toml(path)
    assert "typo.toml" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("lr", "0.1", "lr must be a float"),
        ("max_steps", 2.5, "max_steps must be an int"),
        ("max_steps", True, "max_steps must be an int"),  # a bool is not a number
        ("debug", 1, "debug must be true or false"),
        ("betas", [0.9], "betas must be a list of 2 numbers"),
        ("out_dir", 3, "out_dir must be a string or None"),
    ],
)
def test_wrong_type_names_key_and_expected_type(key, value, expected):
    with pytest.raises(TypeError, match=expected):
        TrainerConfig.from_dict({key: value})


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": 1e-3, "min_lr": 1e-2}, "min_lr"),
        ({"schedule": "exp"}, "schedule must be one of"),
        ({"device": "tpu"}, "device must be one of"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"eval_interval": -1}, "eval_interval must be >= 0"),
    ],
)
def test_bad_values_are_rejected(changes, expected):
    with pytest.raises(ValueError, match=expected):
        TrainerConfig(**changes)


def test_replace_validates():
    cfg = TrainerConfig()
    assert cfg.replace(max_steps=5).max_steps == 5
    assert cfg.max_steps == 2000  # the original is unchanged
    with pytest.raises(ValueError, match="unknown key"):
        cfg.replace(max_step=5)


def test_load_toml_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.toml.*not valid TOML"):
        load_toml(bad)


def test_check_fields_works_for_any_dataclass():
    @dataclasses.dataclass
    class Small:
        n: int = 1
        p: float | None = None

    assert check_fields(Small, {"n": 2, "p": 1}) == {"n": 2, "p": 1.0}
    with pytest.raises(TypeError, match=r"\[small\]: n must be an int, got 'x' \(str\)"):
        check_fields(Small, {"n": "x"}, where="[small]")

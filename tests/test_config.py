"""Config loading: _base_ inheritance, --opts overrides with YAML types, schema validation, env variables."""
from pathlib import Path

import pytest

from bgmatting.config import load_config, parse_opts
from bgmatting.errors import UserError

SCHEMA = {
    "model": {"type": "MattingBase", "backbone": "resnet50", "scale": 0.25},
    "train": {"iters": 100, "lr": {"backbone": 1e-4}, "amp": True, "sizes": [256, 512]},
    "data": {"root": None},
    "extra": {"*": None},
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_base_inheritance_merges_mappings_and_replaces_lists(tmp_path):
    _write(tmp_path / "base.yaml", "model: {backbone: mobilenetv2}\ntrain: {iters: 5, sizes: [1, 2, 3]}\n")
    child = _write(tmp_path / "child.yaml", "_base_: base.yaml\ntrain: {sizes: [7]}\n")
    cfg = load_config(child, defaults=SCHEMA)
    assert cfg["model"] == {"type": "MattingBase", "backbone": "mobilenetv2", "scale": 0.25}
    assert cfg["train"]["iters"] == 5 and cfg["train"]["sizes"] == [7]
    assert cfg["train"]["lr"] == {"backbone": 1e-4} and cfg["data"]["root"] is None


def test_opts_override_with_yaml_types(tmp_path):
    cfg = load_config(None, ["train.iters=7", "train.lr.backbone=2e-5", "train.amp=false", "data.root=/x y",
                             "train.sizes=[64, 128]", "extra.anything=3"], SCHEMA)
    assert cfg["train"]["iters"] == 7 and isinstance(cfg["train"]["iters"], int)
    assert cfg["train"]["lr"]["backbone"] == 2e-5 and cfg["train"]["amp"] is False
    assert cfg["data"]["root"] == "/x y" and cfg["train"]["sizes"] == [64, 128]
    assert cfg["extra"] == {"anything": 3}


def test_unknown_key_names_key_and_file(tmp_path):
    base = _write(tmp_path / "base.yaml", "train: {itres: 5}\n")
    child = _write(tmp_path / "child.yaml", "_base_: base.yaml\n")
    with pytest.raises(UserError, match=r"unknown config key 'train\.itres' in .*base\.yaml"):
        load_config(child, defaults=SCHEMA)
    with pytest.raises(UserError, match=r"unknown config key 'model\.backbon' in --opts"):
        load_config(None, ["model.backbon=x"], SCHEMA)
    assert base.exists()


def test_wrong_type_and_bad_files_are_user_errors(tmp_path):
    cfg_file = _write(tmp_path / "c.yaml", "train: {iters: many}\n")
    with pytest.raises(UserError, match=r"'train\.iters' in .*c\.yaml expects int, got 'many'"):
        load_config(cfg_file, defaults=SCHEMA)
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "missing.yaml", defaults=SCHEMA)
    _write(tmp_path / "a.yaml", "_base_: b.yaml\n")
    _write(tmp_path / "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(UserError, match="_base_ cycle"):
        load_config(tmp_path / "a.yaml", defaults=SCHEMA)
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(_write(tmp_path / "bad.yaml", "train: [\n"), defaults=SCHEMA)
    with pytest.raises(UserError, match="key.sub=value"):
        parse_opts(["train.iters"])


def test_environment_variables_expand_with_defaults(tmp_path, monkeypatch):
    cfg_file = _write(tmp_path / "e.yaml", "data: {root: '${BGM_TEST_ROOT:-/fallback}/train'}\n")
    assert load_config(cfg_file, defaults=SCHEMA)["data"]["root"] == "/fallback/train"
    monkeypatch.setenv("BGM_TEST_ROOT", "/datasets/vm")
    assert load_config(cfg_file, defaults=SCHEMA)["data"]["root"] == "/datasets/vm/train"
    with pytest.raises(UserError, match="BGM_UNSET_VAR, which is not set"):
        load_config(None, ["data.root=${BGM_UNSET_VAR}/x"], SCHEMA)


def test_shipped_training_configs_load_with_the_official_settings():
    from bgmatting.config import TRAIN_DEFAULTS

    configs = Path(__file__).resolve().parents[1] / "configs"
    base = load_config(configs / "bgmv2" / "base_resnet50_videomatte240k.yaml", defaults=TRAIN_DEFAULTS)
    refine = load_config(configs / "bgmv2" / "refine_resnet50_videomatte240k.yaml", defaults=TRAIN_DEFAULTS)
    assert base["train"]["lr"] == {"backbone": 1e-4, "aspp": 5e-4, "decoder": 5e-4, "refiner": 3e-4}
    assert refine["train"]["lr"] == {"backbone": 5e-5, "aspp": 5e-5, "decoder": 1e-4, "refiner": 3e-4}
    assert (base["data"]["resolution"], base["data"]["crop"]) == (512, {"min": 256, "max": 512, "multiple": 1})
    assert (refine["data"]["resolution"], refine["data"]["crop"]) == (2048, {"min": 1024, "max": 2048, "multiple": 4})
    assert base["augment"]["fgr"]["affine"]["scale"] == [0.4, 1.0]
    assert refine["augment"]["fgr"]["affine"]["scale"] == [0.3, 1.0]
    assert [base["augment"]["plate"][k]["prob"] for k in ("shadow", "noise", "jitter", "misalign")] == [0.3, 0.4, 0.8, 0.3]
    assert refine["model"]["type"] == "MattingRefine" and base["train"]["batch_size"] == 8
    for name in ("refine_resnet50_photomatte13k.yaml",):
        assert load_config(configs / "bgmv2" / name, defaults=TRAIN_DEFAULTS)["model"]["type"] == "MattingRefine"
    for path in configs.glob("bgmv2*tiny.yaml"):
        assert load_config(path, defaults=TRAIN_DEFAULTS)["model"]["backbone"] == "mobilenetv2"

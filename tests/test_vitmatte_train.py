"""ViTMatte training on the shared trainer: tiny runs, resume, the official optimiser/schedule, online trimaps and
crops, DINO/MAE initialisation with a zero trimap channel, config errors, and the ``vitmatte`` stage."""
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import torch

from bgmatting.config import load_config
from bgmatting.data.trimap_batch import trimap_training_batch, unknown_centred_window
from bgmatting.engine.predictor import Predictor
from bgmatting.engine.trainer import Trainer
from bgmatting.engine.vitmatte_trainer import (VITMATTE_TRAIN_DEFAULTS, ViTMatteTrainer, build_optimizer,
                                               build_scheduler, load_training_config, load_vit_pretrained)
from bgmatting.errors import UserError
from bgmatting.models.vitmatte import build_vitmatte
from tests.conftest import make_training_data

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "vitmatte" / "tiny.yaml"
FAST = ["data.valid_samples=2", "train.val_interval=1000"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_training_data(tmp_path_factory.mktemp("synthetic"))


def _config(data, monkeypatch, *opts):
    monkeypatch.setenv("BGM_SYNTHETIC", str(data))
    trainer_class, cfg = load_training_config(TINY, list(opts))
    assert trainer_class is ViTMatteTrainer
    return cfg


def _losses(save_dir):
    with open(save_dir / "losses.csv") as f:
        return {int(row["iteration"]): row for row in csv.DictReader(f)}


def test_tiny_run_trains_and_its_checkpoint_loads_in_the_predictor(data, tmp_path, monkeypatch):
    cfg = _config(data, monkeypatch, "train.iters=3", "train.save_interval=3", "data.valid_samples=2")
    result = ViTMatteTrainer(cfg, tmp_path).train()
    assert result["iteration"] == 3 and 0 < result["best_sad"] < float("inf")
    rows = _losses(tmp_path)
    assert sorted(rows) == [1, 2, 3]
    assert {"unknown_l1", "known_l1", "laplacian", "gradient_penalty", "lr"} <= set(rows[1])
    total = sum(float(rows[1][k]) for k in ("unknown_l1", "known_l1", "laplacian", "gradient_penalty"))
    assert float(rows[1]["loss"]) == pytest.approx(total, rel=1e-5)  # all four official terms, weight 1
    predictor = Predictor("vitmatte", checkpoint=str(tmp_path / "best_model" / "model.pdparams"))
    assert predictor.runner.model.backbone.blocks[0].window_size == 4  # architecture read off the checkpoint
    image = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    trimap = np.full((40, 50), 128, np.uint8)
    assert predictor(image, trimap=trimap)["pha"].shape == (40, 50)


def test_resumed_run_repeats_the_uninterrupted_losses(data, tmp_path, monkeypatch):
    whole = ViTMatteTrainer(_config(data, monkeypatch, "train.iters=6", *FAST), tmp_path / "whole")
    whole.train()
    ViTMatteTrainer(_config(data, monkeypatch, "train.iters=3", "train.save_interval=3", *FAST),
                    tmp_path / "broken").train()
    # another train.iters is another config: continued deliberately
    resumed = ViTMatteTrainer(_config(data, monkeypatch, "train.iters=6", *FAST), tmp_path / "broken",
                              resume=tmp_path / "broken" / "latest")
    assert resumed.iteration == 3
    resumed.train()
    reference, again = _losses(tmp_path / "whole"), _losses(tmp_path / "broken")
    for iteration in (4, 5, 6):
        assert float(again[iteration]["lr"]) == pytest.approx(float(reference[iteration]["lr"]), rel=1e-6)
        assert float(again[iteration]["loss"]) == pytest.approx(float(reference[iteration]["loss"]), rel=1e-4)


def test_schedule_is_warmup_then_steps_at_global_milestones():
    cfg = dict(VITMATTE_TRAIN_DEFAULTS["train"], lr=1.0, iters=100, warmup_iters=10, warmup_factor=0.001)
    scheduler = build_scheduler(cfg)
    rates = []
    for _ in range(100):
        rates.append(scheduler())
        scheduler.step()
    expected = [0.001 + (1 - 0.001) * i / 10 for i in range(10)] + [1.0] * 20 + [0.1] * 60 + [0.05] * 10
    np.testing.assert_allclose(rates, expected, rtol=1e-6)


def _tiny_model(seed=0):
    cfg = load_config(TINY, None, VITMATTE_TRAIN_DEFAULTS)
    paddle.seed(seed)
    return build_vitmatte({k: v for k, v in cfg["model"].items() if k not in ("pretrained", "init_from")})


def test_first_adamw_step_follows_the_layer_wise_rates_and_skips_decay_on_norms():
    model = _tiny_model()
    train_cfg = dict(VITMATTE_TRAIN_DEFAULTS["train"], lr=1e-3, warmup_iters=0, weight_decay=0.5)
    optimizer, _ = build_optimizer(model, train_cfg)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    pixel_values = paddle.to_tensor(np.random.default_rng(0).normal(size=(1, 4, 64, 64)).astype(np.float32))
    model(pixel_values).sum().backward()
    grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    after = model.state_dict()
    # Adam's first step moves a weight by lr_eff * g / (|g| + eps) ≈ ±lr_eff; AdamW first multiplies it by
    # (1 − lr_eff * decay). Official get_vit_lr_decay_rate with depth 2: patch embedding 0.65^3, block i 0.65^(2-i).
    expected = {"backbone.patch_embed.proj.weight": 0.65**3, "backbone.blocks.0.attn.qkv.weight": 0.65**2,
                "backbone.blocks.1.mlp.fc1.weight": 0.65, "decoder.fusion_blks.0.conv.conv.weight": 1.0}
    for name, factor in expected.items():
        rate = 1e-3 * factor
        grad, old = grads[name], before[name]
        step = old * (1 - rate * 0.5) - after[name].numpy()
        big = np.abs(grad) > 1e-5
        assert big.sum() > 0, name
        np.testing.assert_allclose(step[big], rate * np.sign(grad[big]), rtol=0.02, err_msg=name)
    for name in ("backbone.blocks.0.norm1.weight", "decoder.fusion_blks.0.conv.bn.weight", "backbone.pos_embed",
                 "backbone.blocks.1.residual.norm3.weight"):  # residual conv blocks: factor 1 (their convs get no
        # gradient at the first step: the last norm starts at zero)
        grad, step = grads[name], before[name] - after[name].numpy()  # no decay term
        big = np.abs(grad) > 1e-5
        assert big.sum() > 0, name
        np.testing.assert_allclose(step[big], 1e-3 * vit_factor(name) * np.sign(grad[big]), rtol=0.02, err_msg=name)


def vit_factor(name):
    return 0.65**3 if name == "backbone.pos_embed" else 0.65**2 if name.startswith("backbone.blocks.0.") else 1.0


def test_online_trimaps_and_crops_centred_on_unknown_pixels():
    rng = np.random.default_rng(0)
    pha = np.zeros((3, 96, 96, 1), np.float32)
    pha[:, 60:80, 60:80] = 1.0
    pha[:, 59, 60:80] = 0.5  # a soft edge
    fgr, bgr = np.ones((3, 96, 96, 3), np.float32), np.zeros((3, 96, 96, 3), np.float32)
    image, trimap, alpha = trimap_training_batch(pha, fgr, bgr, rng, crop=32, max_kernel=8)
    assert image.shape == (3, 32, 32, 3) and trimap.shape == (3, 32, 32) and alpha.shape == (3, 32, 32, 1)
    assert set(np.unique(trimap)) <= {0.0, 128.0, 255.0}
    for b in range(3):
        assert (trimap[b] == 128).any()  # the window holds the unknown band
        np.testing.assert_allclose(image[b, :, :, 0], alpha[b, :, :, 0])  # white over black = alpha
        assert (trimap[b][alpha[b, :, :, 0] == 0.5] == 128).all()  # soft pixels are unknown
    trimap_map = np.zeros((50, 70), np.uint8)
    trimap_map[45, 65] = 128
    assert unknown_centred_window(trimap_map, rng, 20) == (30, 50)  # centred on (45, 65), shifted inside
    trimap_map[:] = 0
    trimap_map[10, 10] = 128
    assert unknown_centred_window(trimap_map, rng, 20) == (0, 0)


def test_dino_initialisation_copies_rgb_weights_and_zeroes_the_trimap_channel(tmp_path):
    model = _tiny_model(seed=1)
    donor = _tiny_model(seed=2).state_dict()
    state = {}
    for name, value in donor.items():  # a DINO ViT-S-style checkpoint: timm names, torch layout, RGB input
        if not name.startswith("backbone."):
            continue
        array = value.numpy()
        if name.endswith(("qkv.weight", "proj.weight", "fc1.weight", "fc2.weight")) and array.ndim == 2:
            array = array.T
        if name == "backbone.patch_embed.proj.weight":
            array = array[:, :3]
        state[name.removeprefix("backbone.")] = torch.from_numpy(np.ascontiguousarray(array))
    state["cls_token"], state["norm.weight"] = torch.zeros(1, 1, 32), torch.ones(32)
    path = tmp_path / "dino_tiny.pth"
    torch.save({"model": state}, path)
    decoder_before = model.state_dict()["decoder.matting_head.matting_convs.0.weight"].numpy().copy()
    count = load_vit_pretrained(model, path)
    loaded = model.state_dict()
    assert count == len(state) - 2  # everything but cls_token and the final norm
    patch = loaded["backbone.patch_embed.proj.weight"].numpy()
    np.testing.assert_array_equal(patch[:, :3], state["patch_embed.proj.weight"].numpy())
    assert not patch[:, 3].any()  # the trimap channel starts at zero
    np.testing.assert_array_equal(loaded["backbone.blocks.0.attn.qkv.weight"].numpy(),
                                  state["blocks.0.attn.qkv.weight"].numpy().T)
    np.testing.assert_array_equal(loaded["backbone.blocks.1.attn.rel_pos_h"].numpy(),
                                  state["blocks.1.attn.rel_pos_h"].numpy())  # 2-D, not a Linear: not transposed
    np.testing.assert_array_equal(loaded["decoder.matting_head.matting_convs.0.weight"].numpy(), decoder_before)
    with pytest.raises(UserError, match="no tensor"):
        torch.save({"head.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
        load_vit_pretrained(model, tmp_path / "other.pth")


def test_config_selection_and_errors(data, tmp_path, monkeypatch):
    assert load_training_config(ROOT / "configs" / "bgmv2_tiny.yaml")[0] is Trainer
    with pytest.raises(UserError, match="data.crop must be a multiple of 32"):
        ViTMatteTrainer(_config(data, monkeypatch, "data.crop=48"), tmp_path)
    with pytest.raises(UserError, match="unknown config key 'loss.pha_l1'"):
        _config(data, monkeypatch, "loss.pha_l1=1.0")


def test_stage_runs_the_tiny_config_and_bad_input_is_one_line(data, tmp_path):
    env = {"BGM_SYNTHETIC": str(data), "PATH": "/usr/bin:/bin"}
    stage = [sys.executable, str(ROOT / "stages" / "vitmatte.py"), "--config", str(TINY)]
    done = subprocess.run(stage + ["--save-dir", str(tmp_path / "run"), "--opts", "train.iters=2", *FAST],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "done: iteration 2" in done.stdout and (tmp_path / "run" / "latest" / "model.pdparams").is_file()
    bad = subprocess.run(stage + ["--save-dir", str(tmp_path / "bad"), "--opts", "data.crop=50"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: config key data.crop")
    assert "Traceback" not in bad.stderr

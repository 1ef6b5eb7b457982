"""ViTMatte checkpoints → state dicts for :class:`bgmatting.models.ViTMatte`.

Two layouts are accepted:
- the official hustvl/ViTMatte detectron2 ``.pth`` (state dict under ``model``; keys ``backbone.blocks.N.attn.qkv…``,
  ``decoder.fusion_blks…``, BatchNorm ``….bn.running_mean``), whose names our model uses;
- the Hugging Face ``model.safetensors`` of ``VitMatteForImageMatting`` (``backbone.encoder.layer.N.attention…``,
  ``backbone.embeddings.…``, ``decoder.fusion_blocks…``, ``….batch_norm.…``), renamed to the official names.

Then BatchNorm buffers are renamed for Paddle (``running_mean → _mean``, ``running_var → _variance``,
``num_batches_tracked`` dropped) and the weights of ``nn.Linear`` layers — found by module type in the model built
from the checkpoint's own shapes — are transposed ([out, in] → [in, out]). ``rel_pos_h/w`` are 2-D but not Linear
weights and stay as they are. Missing or unexpected keys and shape mismatches are refused. Our own ``.pdparams``
(recognised by Paddle's BatchNorm names ``_mean``/``_variance``) pass through unchanged, so converting is idempotent.
"""
import math
import re

import numpy as np

from bgmatting.convert.bgmv2 import check_against_model, rename_torch_keys
from bgmatting.errors import UserError

# Hugging Face name fragment → official name fragment (applied in this order).
_HF_TO_OFFICIAL = (
    ("backbone.embeddings.position_embeddings", "backbone.pos_embed"),
    ("backbone.embeddings.projection.", "backbone.patch_embed.proj."),
    ("backbone.encoder.layer.", "backbone.blocks."),
    (".attention.", ".attn."),
    ("decoder.fusion_blocks.", "decoder.fusion_blks."),
    (".batch_norm.", ".bn."),
)
_PATCH_KEYS = ("backbone.patch_embed.proj.weight", "backbone.embeddings.projection.weight")


def _strip_module(key):
    return key[len("module."):] if key.startswith("module.") else key


def is_vitmatte_checkpoint(arrays: dict) -> bool:
    """True when ``arrays`` (``{name: array}``) holds a ViTMatte model in the official, HF or our own layout."""
    return any(_strip_module(k) in _PATCH_KEYS for k in arrays)


def to_official_names(arrays: dict) -> dict:
    """Rename Hugging Face keys to the official detectron2 names (official/our keys pass through unchanged)."""
    out = {}
    for key, value in arrays.items():
        key = _strip_module(key)
        for old, new in _HF_TO_OFFICIAL:
            key = key.replace(old, new)
        out[key] = value
    return out


def _block_indexes(state, suffix):
    pattern = re.compile(r"backbone\.blocks\.(\d+)\." + re.escape(suffix) + "$")
    return sorted(int(m.group(1)) for m in map(pattern.match, state) if m)


def infer_vitmatte_config(state: dict) -> dict:
    """Read the architecture off a state dict in official (or our converted) names.

    Rules: ``embed_dim``, ``in_chans`` and ``patch_size`` from the patch embedding; the pre-training grid and class
    token from ``pos_embed``'s length (S*S + 1 or S*S); heads = embed_dim / head_dim, head_dim being the width of
    ``rel_pos_h`` (or the small/base preset without relative positions); a block whose ``rel_pos_h`` table is
    shorter than the longest one uses window attention (window = (rows + 1) / 2), the longest tables size
    ``img_size``; residual blocks are those holding ``residual.*``; decoder widths from the conv weights.

    Args:
        state: ``{name: array}`` with official/our names (Linear weights in either layout).
    Returns:
        keyword arguments for :class:`bgmatting.models.ViTMatte`: ``size``, ``backbone`` (dict of ViT
        arguments), ``convstream_out``, ``fusion_out``.
    Raises:
        UserError: a tensor the architecture is read from is missing.
    """
    from bgmatting.models.vitmatte import VITMATTE_SIZES

    def get(key):
        if key not in state:
            raise UserError(f"not a complete ViTMatte checkpoint: key '{key}' is missing")
        return state[key]

    embed_dim, in_chans, patch_size = get("backbone.patch_embed.proj.weight").shape[:3]
    depth = len(_block_indexes(state, "norm1.weight"))
    if depth == 0:
        raise UserError("not a complete ViTMatte checkpoint: no 'backbone.blocks.N.norm1.weight' keys")
    backbone = dict(embed_dim=int(embed_dim), in_chans=int(in_chans), patch_size=int(patch_size), depth=depth)
    backbone["mlp_ratio"] = get("backbone.blocks.0.mlp.fc1.bias").shape[0] / embed_dim
    backbone["qkv_bias"] = "backbone.blocks.0.attn.qkv.bias" in state
    backbone["use_abs_pos"] = "backbone.pos_embed" in state
    if backbone["use_abs_pos"]:
        positions = state["backbone.pos_embed"].shape[1]
        with_cls = math.isqrt(positions - 1) ** 2 == positions - 1
        backbone["pretrain_use_cls_token"] = with_cls
        backbone["pretrain_img_size"] = math.isqrt(positions - 1 if with_cls else positions) * int(patch_size)
    rel_rows = {i: state[f"backbone.blocks.{i}.attn.rel_pos_h"] for i in _block_indexes(state, "attn.rel_pos_h")}
    backbone["use_rel_pos"] = bool(rel_rows)
    if rel_rows:
        backbone["num_heads"] = int(embed_dim // next(iter(rel_rows.values())).shape[1])
        longest = max(t.shape[0] for t in rel_rows.values())
        backbone["img_size"] = (longest + 1) // 2 * int(patch_size)
        windows = {i: t.shape[0] for i, t in rel_rows.items() if t.shape[0] < longest}
        backbone["window_block_indexes"] = tuple(sorted(windows))
        backbone["window_size"] = (min(windows.values()) + 1) // 2 if windows else 0
    else:
        preset = [s for s in VITMATTE_SIZES.values() if s["embed_dim"] == embed_dim]
        if not preset:
            raise UserError(f"cannot tell the number of heads of a {embed_dim}-channel ViT without rel_pos tables")
        backbone["num_heads"] = preset[0]["num_heads"]
    backbone["residual_block_indexes"] = tuple(_block_indexes(state, "residual.conv1.weight"))
    convstream = _decoder_widths(state, "decoder.convstream.convs.{}.conv.weight")
    fusion = _decoder_widths(state, "decoder.fusion_blks.{}.conv.conv.weight")
    size = next((name for name, s in VITMATTE_SIZES.items() if s["embed_dim"] == embed_dim), "small")
    return dict(size=size, backbone=backbone, convstream_out=convstream, fusion_out=fusion)


def _decoder_widths(state, pattern):
    widths = []
    while pattern.format(len(widths)) in state:
        widths.append(int(state[pattern.format(len(widths))].shape[0]))
    if not widths:
        raise UserError(f"not a complete ViTMatte checkpoint: key '{pattern.format(0)}' is missing")
    return tuple(widths)


def linear_weight_names(model) -> set:
    """Names of the weights of every ``nn.Linear`` in ``model`` (the tensors to transpose from PyTorch)."""
    import paddle.nn as nn

    return {f"{name}.weight" for name, layer in model.named_sublayers() if isinstance(layer, nn.Linear)}


def convert_vitmatte(arrays: dict):
    """Convert an official or Hugging Face ViTMatte state dict to our Paddle names and layouts.

    Args:
        arrays: ``{name: np.ndarray}`` as read by :func:`bgmatting.convert.checkpoint_io.load_state_arrays`:
            official/HF PyTorch layouts (Linear weights [out, in]) or one of our converted ``.pdparams``.
    Returns:
        (state, info): ``state`` = ``{paddle_name: float32 array}`` for ``ViTMatte(**infer_vitmatte_config(state))
        .set_state_dict``; ``info`` = dict(model_type='vitmatte', size='small'|'base', tensors=N, parameters=N).
    Raises:
        UserError: not ViTMatte, missing/unexpected keys, shape mismatches.
    """
    import paddle

    from bgmatting.models.vitmatte import ViTMatte

    if not is_vitmatte_checkpoint(arrays):
        raise UserError("not a ViTMatte checkpoint: no 'backbone.patch_embed.proj.weight' or "
                        "'backbone.embeddings.projection.weight' key")
    paddle_layout = any(k.endswith(("._mean", "._variance")) for k in arrays)  # one of our own .pdparams
    state = rename_torch_keys(to_official_names(arrays))
    config = infer_vitmatte_config(state)
    with paddle.LazyGuard():
        model = ViTMatte(**config)
    for name in set() if paddle_layout else linear_weight_names(model) & set(state):
        if state[name].ndim != 2:
            raise UserError(f"Linear weight '{name}' has shape {list(state[name].shape)}, expected 2-D")
        state[name] = np.ascontiguousarray(state[name].T)
    check_against_model(state, {k: v.shape for k, v in model.state_dict().items()}, f"ViTMatte-{config['size']}")
    state = {k: v.astype(np.float32) for k, v in state.items()}
    parameters = int(sum(v.size for k, v in state.items() if not k.endswith(("_mean", "_variance"))))
    return state, dict(model_type="vitmatte", size=config["size"], tensors=len(state), parameters=parameters)

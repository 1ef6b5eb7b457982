"""Reference side of the ViTMatte tests: Hugging Face ``VitMatteForImageMatting`` with random weights.

Every tensor of the reference model (including BatchNorm statistics, the zero-initialised last LayerNorm of the
residual blocks and the relative-position tables) is drawn at random, so no part of the network is an identity
and a wrong transpose or name would show in the output.
"""
import functools

import numpy as np
import torch
from transformers import VitDetConfig, VitMatteConfig, VitMatteForImageMatting
from transformers.initialization import no_init_weights

# Tiny: 4 blocks (window, residual+global, window, residual+global), window 3 with padding, relative tables
# sized for a 4x4 grid (interpolated), absolute embedding on a 3x3 grid (bicubic-resized).
TINY = dict(hidden_size=64, num_attention_heads=2, num_hidden_layers=4, window_block_indices=[0, 2],
            residual_block_indices=[1, 3], window_size=3, image_size=64, pretrain_image_size=48,
            convstream=[8, 16, 24], fusion=[32, 16, 12, 8])
# ViTMatte-S exactly (12 blocks).
SMALL = dict(hidden_size=384, num_attention_heads=6, num_hidden_layers=12,
             window_block_indices=[0, 1, 3, 4, 6, 7, 9, 10], residual_block_indices=[2, 5, 8, 11], window_size=14,
             image_size=512, pretrain_image_size=224, convstream=[48, 96, 192], fusion=[256, 128, 64, 32])
# ViTMatte-B widths with 3 blocks (window, window, residual+global) to keep the test fast.
BASE_SHALLOW = dict(SMALL, hidden_size=768, num_attention_heads=12, num_hidden_layers=3,
                    window_block_indices=[0, 1], residual_block_indices=[2])


def build_reference(spec: dict, seed: int = 0) -> VitMatteForImageMatting:
    """A randomly weighted HF ViTMatte in eval mode for ``spec`` (one of the dicts above)."""
    backbone = VitDetConfig(
        num_channels=4, patch_size=16, image_size=spec["image_size"], pretrain_image_size=spec["pretrain_image_size"],
        hidden_size=spec["hidden_size"], num_attention_heads=spec["num_attention_heads"],
        num_hidden_layers=spec["num_hidden_layers"], use_absolute_position_embeddings=True,
        use_relative_position_embeddings=True, window_size=spec["window_size"],
        window_block_indices=spec["window_block_indices"], residual_block_indices=spec["residual_block_indices"],
        out_features=[f"stage{spec['num_hidden_layers']}"],
    )
    config = VitMatteConfig(backbone_config=backbone, hidden_size=spec["hidden_size"],
                            convstream_hidden_sizes=list(spec["convstream"]), fusion_hidden_sizes=list(spec["fusion"]))
    with no_init_weights():  # every float tensor is overwritten below; HF's own init would take seconds
        model = VitMatteForImageMatting(config).eval()
    generator = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            continue
        noise = torch.randn(tensor.shape, generator=generator)
        if name.endswith("running_var"):
            value = 0.5 + torch.rand(tensor.shape, generator=generator)
        elif name.endswith("running_mean") or name.endswith("bias"):
            value = 0.1 * noise
        elif tensor.ndim == 1:  # LayerNorm / BatchNorm scales
            value = 1.0 + 0.2 * noise
        elif "rel_pos" in name or "position_embeddings" in name:
            value = 0.3 * noise
        else:  # Linear / conv weights, fan-in scaled
            value = noise / np.sqrt(np.prod(tensor.shape[1:]))
        state[name] = value
    model.load_state_dict(state)
    return model


SPECS = {"tiny": TINY, "vitmatte-s": SMALL, "base-3-blocks": BASE_SHALLOW}


@functools.lru_cache(maxsize=None)
def shared_reference(name: str, seed: int = 0) -> VitMatteForImageMatting:
    """:func:`build_reference` of ``SPECS[name]``, built once per test session (callers must not modify it)."""
    return build_reference(SPECS[name], seed)


def reference_alpha(model: VitMatteForImageMatting, pixel_values: np.ndarray) -> np.ndarray:
    """HF model output (B, 1, H, W) as numpy for a (B, 4, H, W) float32 input."""
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(pixel_values)).alphas.numpy()


def hf_state_arrays(model: VitMatteForImageMatting) -> dict:
    """The HF model's state dict as ``{name: np.ndarray}`` (as read from its ``model.safetensors``)."""
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}

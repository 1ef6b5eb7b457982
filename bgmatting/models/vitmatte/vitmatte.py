"""ViTMatte: plain ViT backbone + detail-capture decoder (ConvStream, fusion blocks, matting head).

Module tree and parameter names follow the official hustvl/ViTMatte checkpoint (``backbone.blocks.N.attn.qkv``,
``decoder.convstream.convs.N.{conv,bn}``, ``decoder.fusion_blks.N.conv.{conv,bn}``,
``decoder.matting_head.matting_convs.{0,1,3}``), so official weights load after BatchNorm-buffer renames and
Linear transposes (``bgmatting.convert.vitmatte``).
"""
import paddle.nn as nn
import paddle.nn.functional as F

from bgmatting.models.backbones.vit import ViT
from bgmatting.models.vitmatte.convstream import ConvStream
from bgmatting.models.vitmatte.fusion import FusionBlock, MattingHead
from bgmatting.models.vitmatte.tiling import decode_tiled

# Backbone presets: ViTMatte-S (DINO ViT-S/16) and ViTMatte-B (MAE ViT-B/16).
VITMATTE_SIZES = {
    "small": {"embed_dim": 384, "num_heads": 6},
    "base": {"embed_dim": 768, "num_heads": 12},
}


class DetailCapture(nn.Layer):
    """ViTMatte decoder: fuse ViT features with ConvStream details from stride 16 back to full resolution.

    Args:
        in_chans: backbone feature channels (384 / 768).
        img_chans: image channels (4).
        convstream_out: ConvStream widths ((48, 96, 192)).
        fusion_out: fusion block widths, one more than ``convstream_out`` ((256, 128, 64, 32)).
    Input:
        features: (B, in_chans, H / 16, W / 16) float; images: (B, img_chans, H, W) float.
    Output:
        (B, 1, H, W) alpha in [0, 1].
    Example:
        >>> DetailCapture(64)(paddle.randn([1, 64, 2, 3]), paddle.randn([1, 4, 32, 48])).shape
        [1, 1, 32, 48]
    """

    def __init__(self, in_chans=384, img_chans=4, convstream_out=(48, 96, 192), fusion_out=(256, 128, 64, 32)):
        super().__init__()
        if len(fusion_out) != len(convstream_out) + 1:
            raise ValueError("fusion_out must have exactly one more entry than convstream_out")
        self.convstream = ConvStream(img_chans, convstream_out)
        conv_chans = self.convstream.conv_chans
        fusion_chans = [in_chans] + list(fusion_out)
        self.fusion_blks = nn.LayerList(
            [FusionBlock(fusion_chans[i] + conv_chans[-(i + 1)], fusion_chans[i + 1]) for i in range(len(fusion_out))]
        )
        self.matting_head = MattingHead(fusion_out[-1])

    def forward(self, features, images):
        details = self.convstream(images)
        for i, block in enumerate(self.fusion_blks):
            features = block(features, details[len(self.fusion_blks) - i - 1])
        return F.sigmoid(self.matting_head(features))


class ViTMatte(nn.Layer):
    """Trimap-based image matting with a plain ViT (Yao et al., 2024), ViTMatte-S or ViTMatte-B.

    Args:
        size: backbone preset, "small" (384 channels, 6 heads) or "base" (768, 12).
        backbone: optional dict of :class:`~bgmatting.models.backbones.vit.ViT` keyword arguments overriding the
            preset (e.g. ``depth``, ``window_block_indexes``; used for tiny test models).
        convstream_out: ConvStream widths.
        fusion_out: fusion block widths.
        attention_chunk_size: if set, attention runs in slices of this many query tokens (memory-bounded,
            same result); 256 keeps ViTMatte-S at 3840x2160 within a few GB.
        decoder_tile_size: if set, the decoder runs on tiles of this side (a multiple of 16) in eval mode.
        decoder_tile_overlap: margin around each decoder tile (a multiple of 16; 64 reproduces the untiled result).
    Input:
        pixel_values: (B, 4, H, W) float: RGB normalised to [-1, 1] (mean = std = 0.5) and the trimap in
            {0, 128/255, 1} as 4th channel; H and W multiples of 16 (the processor pads to 32), see
            :mod:`bgmatting.models.vitmatte_processing`.
    Output:
        (B, 1, H, W) alpha in [0, 1].
    Example:
        >>> model = ViTMatte("small")
        >>> model.eval()
        >>> model(paddle.zeros([1, 4, 64, 96])).shape
        [1, 1, 64, 96]
    """

    def __init__(
        self,
        size="small",
        backbone=None,
        convstream_out=(48, 96, 192),
        fusion_out=(256, 128, 64, 32),
        attention_chunk_size=None,
        decoder_tile_size=None,
        decoder_tile_overlap=64,
    ):
        super().__init__()
        if size not in VITMATTE_SIZES:
            raise ValueError(f"unknown ViTMatte size '{size}' (choose from {', '.join(VITMATTE_SIZES)})")
        options = {"in_chans": 4, **VITMATTE_SIZES[size], **(backbone or {})}
        self.backbone = ViT(**options)
        self.decoder = DetailCapture(options["embed_dim"], options["in_chans"], convstream_out, fusion_out)
        self.in_chans = options["in_chans"]
        self.size_divisor = self.backbone.patch_size
        self.set_memory_options(attention_chunk_size, decoder_tile_size, decoder_tile_overlap)

    def set_memory_options(self, attention_chunk_size=None, decoder_tile_size=None, decoder_tile_overlap=64):
        """Switch the memory-bounded paths on or off (None = plain); see the class arguments."""
        self.backbone.set_attention_chunk_size(attention_chunk_size)
        self.decoder_tile_size = decoder_tile_size
        self.decoder_tile_overlap = decoder_tile_overlap

    def forward(self, pixel_values):
        shape = pixel_values.shape
        if len(shape) != 4 or shape[1] != self.in_chans or shape[2] % self.size_divisor or shape[3] % self.size_divisor:
            raise ValueError(
                f"ViTMatte expects (B, {self.in_chans}, H, W) with H and W multiples of {self.size_divisor}, "
                f"got {list(shape)}; pad with bgmatting.models.vitmatte_processing.preprocess"
            )
        features = self.backbone(pixel_values)
        if self.decoder_tile_size and not self.training:
            return decode_tiled(self.decoder, features, pixel_values, self.decoder_tile_size, self.decoder_tile_overlap)
        return self.decoder(features, pixel_values)


#: Schema of defaults for a ViTMatte config's ``model`` section (see :mod:`bgmatting.config`); the keys other
#: than ``type`` are :class:`ViTMatte` arguments.
MODEL_DEFAULTS = {
    "type": "ViTMatte",
    "size": "small",
    "backbone": {"*": None},
    "convstream_out": [48, 96, 192],
    "fusion_out": [256, 128, 64, 32],
    "attention_chunk_size": None,
    "decoder_tile_size": None,
    "decoder_tile_overlap": 64,
}


def build_vitmatte(model_config: dict) -> ViTMatte:
    """Build :class:`ViTMatte` from a config's ``model`` section (keys of :data:`MODEL_DEFAULTS`).

    Raises:
        ValueError: ``type`` is not ViTMatte or ``size`` is unknown.
    """
    options = dict(model_config)
    kind = options.pop("type", "ViTMatte")
    if kind != "ViTMatte":
        raise ValueError(f"model type '{kind}' is not ViTMatte")
    return ViTMatte(**options)

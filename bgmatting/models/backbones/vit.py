"""ViTDet-style plain Vision Transformer (ViTMatte's backbone).

Window attention in most blocks, global attention in a few, decomposed relative positions (MViTv2),
residual convolution blocks after chosen blocks, and an absolute position embedding learnt on the
pre-training grid that is bicubic-resized to the token grid. Parameter names follow the official
hustvl/ViTMatte (detectron2) code: ``patch_embed.proj``, ``pos_embed``, ``blocks.N.{norm1, attn.{qkv, proj,
rel_pos_h, rel_pos_w}, norm2, mlp.{fc1, fc2}, residual.{conv1, norm1, conv2, norm2, conv3, norm3}}``.

Global attention can run query-chunked (``attention_chunk_size``): the (N, N) score matrix is never built,
only (chunk, N) slices, so a 3840x2160 image (32,400 tokens) fits in a few GB. The result equals the plain
path up to float rounding.
"""
import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from bgmatting.models.ops import zero_pad

# Initialisation as the official code: Linear weights ~ N(0, 0.02), residual convs c2_msra_fill.
_LINEAR_INIT = paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(std=0.02))


def _linear(in_features, out_features, bias=True):
    """nn.Linear (weight [in, out]) with the ViT initialisation and a zero bias."""
    bias_attr = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)) if bias else False
    return nn.Linear(in_features, out_features, weight_attr=_LINEAR_INIT, bias_attr=bias_attr)


def _msra_conv(in_channels, out_channels, kernel_size, padding=0):
    """Bias-free conv initialised as detectron2's ``c2_msra_fill`` (Kaiming normal, fan-out, ReLU gain)."""
    std = math.sqrt(2.0 / (out_channels * kernel_size * kernel_size))
    attr = paddle.ParamAttr(initializer=nn.initializer.Normal(std=std))
    return nn.Conv2D(in_channels, out_channels, kernel_size, padding=padding, weight_attr=attr, bias_attr=False)


def get_abs_pos(pos_embed, has_cls_token, height, width):
    """Resize the absolute position embedding to the token grid (bicubic, ``align_corners=False``).

    Args:
        pos_embed: (1, L, C) embedding of a square pre-training grid, L = S*S (+1 with a class token).
        has_cls_token: whether the first entry is the class token's (dropped).
        height, width: token grid size.
    Returns:
        (1, height, width, C) tensor.
    """
    if has_cls_token:
        pos_embed = pos_embed[:, 1:]
    num_positions = pos_embed.shape[1]
    size = int(math.isqrt(num_positions))
    if size * size != num_positions:
        raise ValueError(f"absolute position embedding has {num_positions} positions, not a square grid")
    grid = pos_embed.reshape([1, size, size, -1])
    if size == height and size == width:
        return grid
    grid = F.interpolate(grid.transpose([0, 3, 1, 2]), size=[height, width], mode="bicubic", align_corners=False)
    return grid.transpose([0, 2, 3, 1])


def get_rel_pos(q_size, k_size, rel_pos):
    """Relative position embeddings for every (query, key) pair along one axis.

    The table is linearly resized when its length differs from ``2 * max(q_size, k_size) - 1``.

    Args:
        q_size, k_size: query and key lengths along the axis.
        rel_pos: (L, C) table.
    Returns:
        (q_size, k_size, C) tensor.
    """
    max_rel_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_rel_dist:
        table = rel_pos.transpose([1, 0]).unsqueeze(0)  # (1, C, L)
        table = F.interpolate(table, size=[max_rel_dist], mode="linear", align_corners=False, data_format="NCW")
        rel_pos = table.squeeze(0).transpose([1, 0])
    q_coords = paddle.arange(q_size, dtype="float32").unsqueeze(1) * max(k_size / q_size, 1.0)
    k_coords = paddle.arange(k_size, dtype="float32").unsqueeze(0) * max(q_size / k_size, 1.0)
    relative_coords = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    index = relative_coords.astype("int64").flatten()
    return paddle.index_select(rel_pos, index, axis=0).reshape([q_size, k_size, -1])


def window_partition(x, window_size):
    """Split a token grid into non-overlapping windows, zero-padding bottom/right to a multiple of the window.

    Args:
        x: (B, H, W, C) tokens.
        window_size: window side.
    Returns:
        windows (B * nH * nW, window_size, window_size, C) and the padded size (Hp, Wp).
    """
    batch, height, width, channels = x.shape
    pad_h = (window_size - height % window_size) % window_size
    pad_w = (window_size - width % window_size) % window_size
    if pad_h or pad_w:
        x = zero_pad(zero_pad(x, 1, after=pad_h), 2, after=pad_w)  # not F.pad: wrong under oneDNN
    hp, wp = height + pad_h, width + pad_w
    x = x.reshape([batch, hp // window_size, window_size, wp // window_size, window_size, channels])
    windows = x.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, window_size, window_size, channels])
    return windows, (hp, wp)


def window_unpartition(windows, window_size, padded_size, size):
    """Inverse of :func:`window_partition`: reassemble windows and drop the padding.

    Args:
        windows: (B * nH * nW, window_size, window_size, C).
        window_size: window side.
        padded_size: (Hp, Wp) returned by :func:`window_partition`.
        size: (H, W) before padding.
    Returns:
        (B, H, W, C) tokens.
    """
    hp, wp = padded_size
    height, width = size
    batch = windows.shape[0] // (hp * wp // window_size // window_size)
    x = windows.reshape([batch, hp // window_size, wp // window_size, window_size, window_size, -1])
    x = x.transpose([0, 1, 3, 2, 4, 5]).reshape([batch, hp, wp, -1])
    if hp > height or wp > width:
        x = x[:, :height, :width, :]
    return x


class Attention(nn.Layer):
    """Multi-head self-attention over a token grid with decomposed relative positions.

    Args:
        dim: channels C.
        num_heads: heads (C must divide by it).
        qkv_bias: bias in the qkv projection.
        use_rel_pos: add decomposed relative position terms to the scores.
        input_size: (h, w) grid the relative tables are sized for (tables have 2h-1 and 2w-1 rows).
        chunk_size: if set, attend in slices of this many query tokens whenever the grid has more tokens
            (bounded memory, same result up to float rounding).
    Input:
        x: (B, H, W, C) float tokens.
    Output:
        (B, H, W, C) float tokens.
    Example:
        >>> attn = Attention(64, num_heads=2, input_size=(8, 8))
        >>> attn(paddle.randn([1, 8, 8, 64])).shape
        [1, 8, 8, 64]
    """

    def __init__(self, dim, num_heads=8, qkv_bias=True, use_rel_pos=False, input_size=None, chunk_size=None):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.chunk_size = chunk_size
        self.qkv = _linear(dim, dim * 3, bias=qkv_bias)
        self.proj = _linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            zeros = nn.initializer.Constant(0.0)
            self.rel_pos_h = self.create_parameter([2 * input_size[0] - 1, head_dim], default_initializer=zeros)
            self.rel_pos_w = self.create_parameter([2 * input_size[1] - 1, head_dim], default_initializer=zeros)

    def forward(self, x):
        batch, height, width, _ = x.shape
        tokens = height * width
        qkv = self.qkv(x).reshape([batch, tokens, 3, self.num_heads, -1]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv.reshape([3, batch * self.num_heads, tokens, -1]).unbind(0)
        rel_h = rel_w = None
        if self.use_rel_pos:
            rel_h, rel_w = self._relative_terms(q, height, width)
        chunk = min(self.chunk_size or tokens, tokens)
        parts = [
            self._attend(q, k, v, rel_h, rel_w, start, min(start + chunk, tokens), height, width)
            for start in range(0, tokens, chunk)
        ]
        out = parts[0] if len(parts) == 1 else paddle.concat(parts, axis=1)
        out = out.reshape([batch, self.num_heads, height, width, -1]).transpose([0, 2, 3, 1, 4])
        return self.proj(out.reshape([batch, height, width, -1]))

    def _relative_terms(self, q, height, width):
        """Per-query relative position terms: (BH, N, H) for rows and (BH, N, W) for columns."""
        r_q = q.reshape([q.shape[0], height, width, -1])
        table_h = get_rel_pos(height, height, self.rel_pos_h)
        table_w = get_rel_pos(width, width, self.rel_pos_w)
        rel_h = paddle.einsum("bhwc,hkc->bhwk", r_q, table_h).reshape([q.shape[0], height * width, height])
        rel_w = paddle.einsum("bhwc,wkc->bhwk", r_q, table_w).reshape([q.shape[0], height * width, width])
        return rel_h, rel_w

    def _attend(self, q, k, v, rel_h, rel_w, start, stop, height, width):
        """Attention output of queries ``start:stop`` against all keys: (BH, stop - start, head_dim)."""
        # The score matrix is the big tensor here: update it in place (2-3x faster on CPU, no extra copies).
        q_chunk = q[:, start:stop] if (start, stop) != (0, q.shape[1]) else q
        scores = paddle.matmul(q_chunk * self.scale, k, transpose_y=True)
        if rel_h is not None:
            rows = stop - start
            scores = scores.reshape([-1, rows, height, width])
            if paddle.in_dynamic_mode():
                scores.add_(rel_h[:, start:stop].unsqueeze(-1))
                scores.add_(rel_w[:, start:stop].unsqueeze(-2))
            else:  # static-graph export: in-place ops on a reshaped tensor are refused by to_static
                scores = scores + rel_h[:, start:stop].unsqueeze(-1) + rel_w[:, start:stop].unsqueeze(-2)
            scores = scores.reshape([-1, rows, height * width])
        softmax = F.softmax_ if paddle.in_dynamic_mode() else F.softmax  # to_static refuses in-place on a view
        return paddle.matmul(softmax(scores, axis=-1), v)


class LayerNorm2D(nn.Layer):
    """LayerNorm over the channel axis of a channels-first map (detectron2's ``LayerNorm``), eps 1e-6.

    Args:
        channels: C.
        eps: added to the variance.
    Input:
        x: (B, C, H, W) float.
    Output:
        (B, C, H, W) float, each pixel's channel vector normalised then scaled and shifted.
    Example:
        >>> LayerNorm2D(8)(paddle.randn([1, 8, 4, 4])).shape
        [1, 8, 4, 4]
    """

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = self.create_parameter([channels], default_initializer=nn.initializer.Constant(1.0))
        self.bias = self.create_parameter([channels], default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / paddle.sqrt(var + self.eps)
        return self.weight.reshape([1, -1, 1, 1]) * x + self.bias.reshape([1, -1, 1, 1])


class ResBottleneckBlock(nn.Layer):
    """Residual bottleneck without the last activation: 1x1 -> 3x3 -> 1x1 convs, each followed by LN.

    The last LayerNorm starts at zero, so a freshly built block is the identity.

    Args:
        channels: input and output channels C.
        bottleneck_channels: channels of the 3x3 conv.
    Input:
        x: (B, C, H, W) float.
    Output:
        (B, C, H, W) float = x + block(x).
    Example:
        >>> ResBottleneckBlock(64, 32)(paddle.randn([1, 64, 4, 6])).shape
        [1, 64, 4, 6]
    """

    def __init__(self, channels, bottleneck_channels):
        super().__init__()
        self.conv1 = _msra_conv(channels, bottleneck_channels, 1)
        self.norm1 = LayerNorm2D(bottleneck_channels)
        self.act1 = nn.GELU()
        self.conv2 = _msra_conv(bottleneck_channels, bottleneck_channels, 3, padding=1)
        self.norm2 = LayerNorm2D(bottleneck_channels)
        self.act2 = nn.GELU()
        self.conv3 = _msra_conv(bottleneck_channels, channels, 1)
        self.norm3 = LayerNorm2D(channels)
        self.norm3.weight.set_value(paddle.zeros([channels]))

    def forward(self, x):
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.act2(self.norm2(self.conv2(out)))
        return x + self.norm3(self.conv3(out))


class Mlp(nn.Layer):
    """Two-layer perceptron with exact GELU (timm ``Mlp``).

    Args:
        dim: input/output channels C.
        hidden_dim: hidden channels.
    Input:
        x: (..., C) float.
    Output:
        (..., C) float.
    Example:
        >>> Mlp(8, 32)(paddle.randn([2, 8])).shape
        [2, 8]
    """

    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.fc1 = _linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = _linear(hidden_dim, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Layer):
    """Transformer block: (window or global) attention and MLP, each pre-normed and residual; optional conv block.

    Args:
        dim: channels C.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / C.
        qkv_bias: bias in qkv.
        use_rel_pos: decomposed relative positions.
        window_size: 0 for global attention, else the window side.
        use_residual_block: append a :class:`ResBottleneckBlock` (C -> C/2 -> C).
        input_size: (h, w) token grid the global relative tables are sized for.
        chunk_size: query chunk for memory-bounded attention (see :class:`Attention`).
    Input:
        x: (B, H, W, C) float tokens.
    Output:
        (B, H, W, C) float tokens.
    Example:
        >>> Block(64, 2, window_size=4, use_rel_pos=True)(paddle.randn([1, 6, 5, 64])).shape
        [1, 6, 5, 64]
    """

    def __init__(
        self,
        dim,
        num_heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        use_rel_pos=False,
        window_size=0,
        use_residual_block=False,
        input_size=None,
        chunk_size=None,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=1e-6)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            use_rel_pos=use_rel_pos,
            input_size=input_size if window_size == 0 else (window_size, window_size),
            chunk_size=chunk_size,
        )
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.window_size = window_size
        self.residual = ResBottleneckBlock(dim, dim // 2) if use_residual_block else None

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            height, width = x.shape[1], x.shape[2]
            x, padded_size = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(x), self.window_size, padded_size, (height, width))
        else:
            x = self.attn(x)
        x = shortcut + x
        x = x + self.mlp(self.norm2(x))
        if self.residual is not None:
            x = self.residual(x.transpose([0, 3, 1, 2])).transpose([0, 2, 3, 1])
        return x


class PatchEmbed(nn.Layer):
    """Non-overlapping patch embedding by a strided conv.

    Args:
        patch_size: patch side (kernel = stride).
        in_chans: input channels.
        embed_dim: output channels C.
    Input:
        x: (B, in_chans, H, W) float.
    Output:
        (B, H // patch_size, W // patch_size, C) float tokens (channels last).
    Example:
        >>> PatchEmbed(16, 4, 64)(paddle.randn([1, 4, 32, 48])).shape
        [1, 2, 3, 64]
    """

    def __init__(self, patch_size=16, in_chans=4, embed_dim=768):
        super().__init__()
        self.proj = nn.Conv2D(in_chans, embed_dim, patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).transpose([0, 2, 3, 1])


class ViT(nn.Layer):
    """ViTDet plain ViT backbone returning the last block's features at stride ``patch_size``.

    Args:
        img_size: image side the global relative-position tables are sized for (512 in ViTMatte).
        patch_size: patch side (16).
        in_chans: input channels (4: RGB + trimap).
        embed_dim: C (384 small, 768 base).
        depth: number of blocks (12).
        num_heads: heads (6 small, 12 base).
        mlp_ratio: MLP width ratio (4).
        qkv_bias: bias in qkv.
        use_abs_pos: add the resized absolute position embedding.
        use_rel_pos: decomposed relative positions in every block.
        window_size: window side of window-attention blocks (14).
        window_block_indexes: blocks with window attention (the others are global).
        residual_block_indexes: blocks followed by a residual conv block.
        pretrain_img_size: image side of the pre-training grid of ``pos_embed`` (224 -> 14x14).
        pretrain_use_cls_token: ``pos_embed`` carries a class-token entry first.
        attention_chunk_size: query chunk of memory-bounded attention, None for plain attention.
    Input:
        x: (B, in_chans, H, W) float, H and W multiples of ``patch_size``.
    Output:
        (B, C, H / patch_size, W / patch_size) float features.
    Example:
        >>> vit = ViT(embed_dim=64, depth=2, num_heads=2, window_block_indexes=(0,), residual_block_indexes=(1,))
        >>> vit(paddle.randn([1, 4, 64, 96])).shape
        [1, 64, 4, 6]
    """

    def __init__(
        self,
        img_size=512,
        patch_size=16,
        in_chans=4,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        use_abs_pos=True,
        use_rel_pos=True,
        window_size=14,
        window_block_indexes=(0, 1, 3, 4, 6, 7, 9, 10),
        residual_block_indexes=(2, 5, 8, 11),
        pretrain_img_size=224,
        pretrain_use_cls_token=True,
        attention_chunk_size=None,
    ):
        super().__init__()
        self.patch_size = patch_size
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = None
        if use_abs_pos:
            num_positions = (pretrain_img_size // patch_size) ** 2 + (1 if pretrain_use_cls_token else 0)
            self.pos_embed = self.create_parameter(
                [1, num_positions, embed_dim], default_initializer=nn.initializer.TruncatedNormal(std=0.02)
            )
        grid = (img_size // patch_size, img_size // patch_size)
        self.blocks = nn.LayerList(
            [
                Block(
                    embed_dim,
                    num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    use_rel_pos=use_rel_pos,
                    window_size=window_size if i in window_block_indexes else 0,
                    use_residual_block=i in residual_block_indexes,
                    input_size=grid,
                    chunk_size=attention_chunk_size,
                )
                for i in range(depth)
            ]
        )

    def set_attention_chunk_size(self, chunk_size):
        """Use query-chunked attention with ``chunk_size`` query tokens per slice (None: plain attention)."""
        for block in self.blocks:
            block.attn.chunk_size = chunk_size

    def forward(self, x):
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + get_abs_pos(self.pos_embed, self.pretrain_use_cls_token, x.shape[1], x.shape[2])
        for block in self.blocks:
            x = block(x)
        return x.transpose([0, 3, 1, 2])

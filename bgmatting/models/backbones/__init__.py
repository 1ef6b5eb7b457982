"""The backbone registry of the base network: one :class:`Backbone` per name, declared once.

Everything that names a backbone — building a model, recognising a checkpoint, the CLI choices, the exporter —
reads :data:`BACKBONES`. A new backbone is its module plus one :func:`register_backbone` call (here for the
built-in ones, or in user code before the model is built), as PaddleSeg's ``manager.BACKBONES.add_component``.

Example:
    >>> from bgmatting.models.backbones import register_backbone, build_encoder
    >>> register_backbone("tiny", lambda in_channels, pretrained: TinyEncoder(in_channels), (64, 32, 16, 8),
    ...                   lambda keys: "backbone.tiny_stem.weight" in keys)
    >>> encoder, channels = build_encoder("tiny", 6)
"""
from dataclasses import dataclass
from typing import Callable

from bgmatting.errors import UserError


@dataclass(frozen=True)
class Backbone:
    """One registered encoder of the base network.

    Attributes:
        name: the name used everywhere (``--model-backbone``, ``model.backbone``, model cards).
        factory: ``(in_channels, pretrained) -> paddle.nn.Layer`` whose forward maps (B, in_channels, H, W) to
            ``(x4, x3, x2, x1, x0)``: features at 1/16 (or 1/8 with dilation), 1/8, 1/4, 1/2 and the input.
        channels: ``(x4, x3, x2, x1)`` feature channels, the ASPP input first.
        signature: ``set of state-dict keys -> bool``: True when a checkpoint's keys are this backbone's
            (checked in registration order; key names after :func:`bgmatting.convert.bgmv2.rename_torch_keys`).
        official: an official BackgroundMattingV2 backbone (official checkpoints and torch parity exist).
        pretrained_loader: True when ``pretrained`` goes to the factory (its own ImageNet loader) rather than
            to the project's name-matching loader.
    """

    name: str
    factory: Callable
    channels: tuple
    signature: Callable
    official: bool = False
    pretrained_loader: bool = False


#: name → Backbone, in registration order (the order checkpoints are matched in)
BACKBONES = {}


def register_backbone(name: str, factory: Callable, channels, signature: Callable, official: bool = False,
                      pretrained_loader: bool = False) -> Backbone:
    """Register (or replace) a backbone; returns its :class:`Backbone`."""
    backbone = Backbone(name, factory, tuple(channels), signature, official, pretrained_loader)
    BACKBONES[name] = backbone
    return backbone


def get_backbone(name: str) -> Backbone:
    """The registered backbone ``name``; UserError naming the known ones otherwise."""
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r} (choose from {', '.join(BACKBONES)})")
    return BACKBONES[name]


def backbone_names() -> tuple:
    """Names of every registered backbone, official ones first."""
    return tuple(BACKBONES)


def build_encoder(name: str, in_channels: int, pretrained: str = None):
    """Build the encoder of backbone ``name``.

    Returns:
        (encoder, channels): ``channels`` = (x4, x3, x2, x1) feature channels, the ASPP input first.
    Raises:
        UserError: unknown backbone name.
    """
    backbone = get_backbone(name)
    return backbone.factory(in_channels, pretrained), backbone.channels


def detect_backbone(keys) -> str:
    """The backbone whose signature matches a BackgroundMattingV2 state dict's keys (Paddle names).

    Raises:
        UserError: no registered backbone recognises the keys.
    """
    keys = set(keys)
    for backbone in BACKBONES.values():
        if backbone.signature(keys):
            return backbone.name
    raise UserError("not a BackgroundMattingV2 checkpoint of a known backbone (registered: "
                    f"{', '.join(BACKBONES)}; first keys: {', '.join(sorted(keys)[:3])})")


def _block_count(keys, prefix: str) -> int:
    """Number of distinct blocks ``prefix<N>.…`` (or ``prefix<N>`` followed by ``.``) among ``keys``."""
    return len({k[len(prefix):].split(".")[0] for k in keys if k.startswith(prefix)})


def _resnet(depth):
    def factory(in_channels, pretrained):
        from bgmatting.models.backbones.resnet import ResNetEncoder

        return ResNetEncoder(in_channels, f"resnet{depth}")

    blocks = {50: 6, 101: 23}[depth]
    return factory, lambda keys: ("backbone.conv1.weight" in keys
                                  and _block_count(keys, "backbone.layer3.") == blocks)


def _mobilenetv2(in_channels, pretrained):
    from bgmatting.models.backbones.mobilenetv2 import MobileNetV2Encoder

    return MobileNetV2Encoder(in_channels)


def _resnet_vd(depth):
    name = f"resnet{depth}_vd"

    def factory(in_channels, pretrained):
        from bgmatting.models.backbones.paddleseg_resnet_vd import PaddleSegResNetVdEncoder

        return PaddleSegResNetVdEncoder(name, in_channels, pretrained)

    blocks = {50: 6, 101: 23}[depth]
    # PaddleSeg names the blocks of stage 3 ``bb_2_0`` … ``bb_2_<blocks-1>``
    return factory, lambda keys: ("backbone.body.conv1_1._conv.weight" in keys
                                  and _block_count(keys, "backbone.body.bb_2_") == blocks)


_RESNET_CHANNELS = (2048, 512, 256, 64)


def _register_builtin():
    for depth in (50, 101):
        factory, signature = _resnet(depth)
        register_backbone(f"resnet{depth}", factory, _RESNET_CHANNELS, signature, official=True)
    register_backbone("mobilenetv2", _mobilenetv2, (320, 32, 24, 16),
                      lambda keys: "backbone.features.0.0.weight" in keys, official=True)
    for depth in (50, 101):
        factory, signature = _resnet_vd(depth)
        register_backbone(f"resnet{depth}_vd", factory, _RESNET_CHANNELS, signature, pretrained_loader=True)


_register_builtin()

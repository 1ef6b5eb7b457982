"""Tiled decoding: run ViTMatte's detail-capture decoder on overlapping tiles to bound its memory.

The decoder is local (3x3 convs, stride-2 convs, x2 bilinear upsampling, BatchNorm in eval mode), so each
output pixel depends only on a neighbourhood of the image and of the backbone features. Each tile is decoded
from a crop enlarged by ``overlap`` pixels on every side and only its centre is kept; with tile origins and
margins on the feature grid (multiples of the backbone stride) the sampling grids of all stride-2 convs and
upsamplers line up with the untiled run, so the stitched result equals the untiled decoder up to float
rounding once ``overlap`` covers the decoder's receptive field (64 px does; see tests/test_vitmatte_highres.py).
"""
import paddle


def decode_tiled(decoder, features, images, tile_size, overlap=64):
    """Decode alpha tile by tile and stitch the tile centres.

    Args:
        decoder: callable ``decoder(features, images) -> (B, 1, h, w)`` (ViTMatte's ``DetailCapture``), in eval mode.
        features: (B, C, H / s, W / s) backbone features, s = the backbone stride.
        images: (B, 4, H, W) normalised image + trimap (the decoder's detail input).
        tile_size: side of the kept centre of each tile in pixels, a positive multiple of s.
        overlap: margin decoded around each tile and discarded, a non-negative multiple of s.
    Returns:
        (B, 1, H, W) alpha, same as ``decoder(features, images)`` up to float rounding.
    Raises:
        ValueError: tile_size or overlap not a multiple of the stride, or non-positive tile_size.
    """
    height, width = images.shape[2], images.shape[3]
    stride = height // features.shape[2]
    if tile_size <= 0 or tile_size % stride or overlap < 0 or overlap % stride:
        raise ValueError(
            f"decoder tile size ({tile_size}) must be a positive multiple of {stride} and the overlap ({overlap}) "
            f"a non-negative multiple of {stride}"
        )
    rows = []
    for y0 in range(0, height, tile_size):
        y1 = min(y0 + tile_size, height)
        top, bottom = max(0, y0 - overlap), min(height, y1 + overlap)
        row = []
        for x0 in range(0, width, tile_size):
            x1 = min(x0 + tile_size, width)
            left, right = max(0, x0 - overlap), min(width, x1 + overlap)
            alpha = decoder(
                features[:, :, top // stride : bottom // stride, left // stride : right // stride],
                images[:, :, top:bottom, left:right],
            )
            row.append(alpha[:, :, y0 - top : y1 - top, x0 - left : x1 - left])
        rows.append(paddle.concat(row, axis=3))
    return paddle.concat(rows, axis=2)

"""Untrusted image bytes → numpy arrays, refusing what is too large or not an image before decoding it.

The header is read first (Pillow reads only the header on ``open``), so a 100-megapixel PNG of a few kB is
refused with 413 without allocating its pixels.
"""
import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from bgmatting.serve.errors import ApiError

ACCEPTED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "BMP": "BMP", "TIFF": "TIFF", "WEBP": "WebP"}
ACCEPTED_NAMES = ", ".join(ACCEPTED_FORMATS.values())


def _open(data: bytes, field: str, max_pixels: int):
    """Open (header only) and check type and area; returns the lazy Pillow image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
    except Image.DecompressionBombError:
        raise ApiError(413, f"{field}: image has too many pixels (the limit is {max_pixels / 1e6:g} MP)") from None
    except Exception:
        raise ApiError(415, f"{field}: not an image (accepted: {ACCEPTED_NAMES})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ApiError(413, f"{field}: image is {width}x{height} = {width * height / 1e6:.1f} MP; "
                            f"the limit is {max_pixels / 1e6:g} MP")
    return image


def check_byte_size(size: int, field: str, max_bytes: int) -> None:
    """ApiError 413 when a file of ``size`` bytes is over ``max_bytes`` (checked before reading it when possible)."""
    if size > max_bytes:
        raise ApiError(413, f"{field}: file is {size / 1e6:.2f} MB; the limit is {max_bytes / 1e6:g} MB")


def check_image(data: bytes, field: str, max_bytes: int, max_pixels: int) -> tuple:
    """Refuse bytes that are too many, not an image, or too many pixels; return ``(width, height)``.

    Raises:
        ApiError: 413 (bytes or pixels over the limit) or 415 (not one of the accepted formats).
    """
    check_byte_size(len(data), field, max_bytes)
    if not data:
        raise ApiError(415, f"{field}: empty file, not an image")
    return _open(data, field, max_pixels).size


def decode_image(data: bytes, field: str, max_pixels: int, grey: bool = False) -> np.ndarray:
    """Decode checked bytes, applying the EXIF orientation (phone photos).

    Returns:
        uint8 (H, W, 3) RGB, or (H, W) when ``grey`` (trimaps). Alpha is dropped.
    Raises:
        ApiError: 415 when the file is truncated or corrupt.
    """
    image = _open(data, field, max_pixels)
    try:
        image = ImageOps.exif_transpose(image)
        return np.asarray(image.convert("L" if grey else "RGB"))
    except Exception:
        raise ApiError(415, f"{field}: corrupt or truncated image") from None

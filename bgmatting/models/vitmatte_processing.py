"""ViTMatte pre- and post-processing, exactly as Hugging Face's ``VitMatteImageProcessor`` (defaults).

Image and trimap are divided by 255, the image is normalised with mean = std = 0.5 (to [-1, 1]), the trimap
becomes the 4th channel, and the result is zero-padded at the bottom/right to a multiple of 32. The model's alpha
is cropped back to the input size afterwards.
"""
import numpy as np

from bgmatting.data.io import check_same_size
from bgmatting.errors import UserError

IMAGE_MEAN = 0.5
IMAGE_STD = 0.5
SIZE_DIVISOR = 32


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def preprocess(images, trimaps, size_divisor=SIZE_DIVISOR):
    """Build the model input from images and trimaps.

    Args:
        images: one (H, W, 3) RGB array with values in 0..255 (uint8 as read by ``bgmatting.data.io.read_image``)
            or a list of them; all of one size when batching.
        trimaps: matching (H, W) arrays in 0..255 (0 background, 128 unknown, 255 foreground).
        size_divisor: pad height and width up to a multiple of this (32).
    Returns:
        (pixel_values, size): pixel_values (B, 4, H', W') float32 - channels 0-2 in [-1, 1], channel 3 in [0, 1],
        zeros in the padding; size = (H, W) to crop the output back to.
    Raises:
        UserError: wrong shapes, image/trimap size mismatch, batch of different sizes, count mismatch.
    """
    images, trimaps = _as_list(images), _as_list(trimaps)
    if len(images) != len(trimaps) or not images:
        raise UserError(f"got {len(images)} images but {len(trimaps)} trimaps")
    for i, (image, trimap) in enumerate(zip(images, trimaps)):
        if image.ndim != 3 or image.shape[2] != 3:
            raise UserError(f"image {i} must be (H, W, 3) RGB, got shape {list(image.shape)}")
        if trimap.ndim != 2:
            raise UserError(f"trimap {i} must be (H, W) grey, got shape {list(trimap.shape)}")
        check_same_size(image, trimap, f"image {i}", f"trimap {i}")
        check_same_size(image, images[0], f"image {i}", "image 0")
    pixel_values = normalize_and_pad(np.stack(images).astype(np.float32) / 255.0,
                                     np.stack(trimaps).astype(np.float32) / 255.0, size_divisor)
    return pixel_values, images[0].shape[:2]


def normalize_and_pad(images, trimaps, size_divisor=SIZE_DIVISOR):
    """The steps of :func:`preprocess` after rescaling: normalise, stack the trimap as 4th channel, zero-pad.

    Args:
        images: (B, H, W, 3) float32 RGB in [0, 1] (already divided by 255).
        trimaps: (B, H, W) float32 in [0, 1] (0, 128/255, 1).
        size_divisor: pad height and width up to a multiple of this (32).
    Returns:
        (B, 4, H', W') float32 pixel values as :func:`preprocess`.
    """
    height, width = images.shape[1:3]
    rgb = (images - IMAGE_MEAN) / IMAGE_STD
    pixel_values = np.concatenate([rgb, trimaps[..., None]], axis=3).transpose(0, 3, 1, 2)
    pad_h, pad_w = -height % size_divisor, -width % size_divisor
    pixel_values = np.pad(pixel_values, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
    return np.ascontiguousarray(pixel_values, dtype=np.float32)


def postprocess(alphas, size):
    """Crop the model's alpha back to the input size.

    Args:
        alphas: (B, 1, H', W') array or tensor in [0, 1].
        size: (H, W) from :func:`preprocess`.
    Returns:
        (B, H, W) float32 array in [0, 1].
    """
    alphas = np.asarray(alphas.numpy() if hasattr(alphas, "numpy") else alphas, dtype=np.float32)
    return alphas[:, 0, : size[0], : size[1]]


def predict_alpha(model, image, trimap):
    """Run a ViTMatte model on one image: preprocess, forward without gradients, crop.

    Args:
        model: :class:`bgmatting.models.ViTMatte` in eval mode.
        image: (H, W, 3) RGB in 0..255; trimap: (H, W) in 0..255.
    Returns:
        (H, W) float32 alpha in [0, 1].
    Example:
        >>> alpha = predict_alpha(model, read_image("img.png"), read_trimap("trimap.png"))
    """
    import paddle

    pixel_values, size = preprocess(image, trimap)
    with paddle.no_grad():
        alphas = model(paddle.to_tensor(pixel_values))
    return postprocess(alphas, size)[0]

"""Reading and writing images, alphas and trimaps with input validation and atomic writes.

Every reader raises :class:`bgmatting.errors.UserError` naming the file when it is missing, unreadable or
corrupt, so CLIs can print one clear line. Every writer writes to a temporary file in the destination folder
and renames it into place, so an interrupted run never leaves a half-written output.
"""
import contextlib
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from bgmatting.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
#: float alphas may stray this far outside [0, 1] (rounding of the tool that wrote them) and are clipped
FLOAT_ALPHA_TOLERANCE = 1e-3
_UMASK = os.umask(0)
os.umask(_UMASK)


def is_image_path(path) -> bool:
    """True when ``path`` has an image file extension (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def is_video_path(path) -> bool:
    """True when ``path`` has a video file extension (case-insensitive)."""
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def _read_raw(path, flags):
    path = Path(path)
    if not path.exists():
        raise UserError(f"file not found: {path}")
    if path.is_dir():
        raise UserError(f"expected an image file but got a folder: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise UserError(f"cannot read image (unreadable or corrupt): {path}")
    return image


def read_image(path) -> np.ndarray:
    """Read an RGB image.

    Returns:
        uint8 array (H, W, 3), RGB, upright (EXIF orientation applied). Grey images are expanded to 3 channels;
        an alpha channel is dropped.
    """
    image = _read_raw(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)  # unlike IMREAD_UNCHANGED, applies EXIF
    image = _to_uint8(image, path)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image[:, :, ::-1])


def read_rgba(path) -> np.ndarray:
    """Read an image keeping its alpha channel.

    Returns:
        uint8 array (H, W, 4), RGBA; images without alpha get an opaque alpha of 255.
    """
    image = _to_uint8(_read_raw(path, cv2.IMREAD_UNCHANGED), path)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 3:
        alpha = np.full(image.shape[:2] + (1,), 255, np.uint8)
        return np.concatenate([image[:, :, ::-1], alpha], axis=2)
    return np.ascontiguousarray(image[:, :, [2, 1, 0, 3]])


def read_alpha(path) -> np.ndarray:
    """Read an alpha matte (a grey image; for RGBA files, the alpha channel; for RGB, the first channel).

    Samples are scaled by their type: uint8 / 255, uint16 / 65535, float (32/64-bit TIFF, EXR…) as stored.

    Returns:
        float32 array (H, W) in [0, 1].
    Raises:
        UserError: another sample type, or a float alpha holding NaN/±inf or values outside [0, 1] (beyond
            :data:`FLOAT_ALPHA_TOLERANCE`, which is clipped), naming the file and how many pixels are bad.
    """
    image = _read_raw(path, cv2.IMREAD_UNCHANGED)
    if image.ndim == 3:
        image = image[:, :, 3] if image.shape[2] == 4 else image[:, :, 0]
    if image.dtype in (np.uint8, np.uint16):
        return image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    if image.dtype not in (np.float32, np.float64):
        raise UserError(f"unsupported alpha sample type {image.dtype} (use 8/16-bit integers or floats in [0, 1]): "
                        f"{path}")
    return _checked_float_alpha(image.astype(np.float32), path)


def _checked_float_alpha(alpha: np.ndarray, path) -> np.ndarray:
    """``alpha`` (float32 (H, W)) clipped to [0, 1]; UserError for NaN/±inf or values clearly outside [0, 1]."""
    finite = np.isfinite(alpha)
    if not finite.all():
        raise UserError(f"alpha has {int((~finite).sum())} NaN/infinite pixel(s): {path}")
    low, high = float(alpha.min()), float(alpha.max())
    if low < -FLOAT_ALPHA_TOLERANCE or high > 1 + FLOAT_ALPHA_TOLERANCE:
        raise UserError(f"float alpha must lie in [0, 1] but holds values in [{low:g}, {high:g}]: {path}")
    return np.clip(alpha, 0.0, 1.0)


def read_trimap(path) -> np.ndarray:
    """Read a trimap as stored (grey, 0 = background, 128 = unknown, 255 = foreground).

    Returns:
        uint8 array (H, W). Values are not quantised here; see :mod:`bgmatting.data.trimap`.
    """
    image = _to_uint8(_read_raw(path, cv2.IMREAD_UNCHANGED), path)
    if image.ndim == 3:
        image = image[:, :, 0]
    return image


def _to_uint8(image, path):
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    raise UserError(f"unsupported image sample type {image.dtype}: {path}")


def check_same_size(a: np.ndarray, b: np.ndarray, name_a, name_b) -> None:
    """Raise UserError when two images differ in height/width, naming both and their sizes."""
    if a.shape[:2] != b.shape[:2]:
        raise UserError(
            f"size mismatch: {name_a} is {a.shape[1]}x{a.shape[0]} but {name_b} is {b.shape[1]}x{b.shape[0]}"
        )


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same extension); rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched. An OSError (a read-only or
    full disk, a parent that is a file) becomes a UserError naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as error:
        raise _write_error(path, error) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise _write_error(path, error) from None
        raise


def _write_error(path, error: OSError) -> UserError:
    return UserError(f"cannot write {path}: {error.strerror or error}")


def check_writable_folder(path, what: str) -> None:
    """Raise UserError unless ``path`` is a folder, or can be created as one, in a writable place.

    Checks the path itself when it exists (it must be a folder), else its nearest existing ancestor (it must be a
    writable folder), so a tool can refuse ``--save-dir``/``--output-dir`` before any work.
    """
    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise UserError(f"{what}: {path} exists and is not a folder")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{what}: cannot create {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{what}: cannot write in {ancestor} (read-only or no permission)")


def _encode(path, image, jpeg_quality):
    ext = Path(path).suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise UserError(f"cannot encode image as {ext}: {path}")
    return buf


def write_image(path, image: np.ndarray, jpeg_quality: int = 95) -> None:
    """Atomically write an image.

    Args:
        image: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA; uint8, or float in [0, 1] (rounded to uint8).
    """
    image = to_uint8(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = image[:, :, ::-1]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, [2, 1, 0, 3]]
    buf = _encode(path, np.ascontiguousarray(image), jpeg_quality)
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        file.write(buf)  # unlike ndarray.tofile, a full disk raises OSError(ENOSPC)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] → uint8 with rounding; uint8 passes through."""
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def list_images(folder, recursive: bool = True) -> list:
    """Sorted image files under ``folder`` (recursively by default) as Paths.

    Raises:
        UserError: the folder does not exist, is not a folder, or holds no image.
    """
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"folder not found: {folder}")
    if not folder.is_dir():
        raise UserError(f"expected a folder: {folder}")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and is_image_path(p) and not p.name.startswith("."))
    if not files:
        raise UserError(f"no images found in folder: {folder}")
    return files

"""One matting request, as run on the model thread: decode → (align) → predict → store.

Shared by ``POST /api/matte`` and every item of a batch, so both accept and refuse exactly the same inputs.
"""
import time

from bgmatting.data.alignment import PlateAligner
from bgmatting.errors import UserError
from bgmatting.serve.errors import ApiError
from bgmatting.serve.uploads import decode_image


def guide_kind(predictor) -> str:
    """``"bgr"`` (clean plate) or ``"trimap"``: the second input the predictor's model takes."""
    return predictor.kind.guide


def matte(predictor, src, guide, align: bool = False) -> dict:
    """Run the model on decoded arrays.

    Args:
        predictor: a :class:`~bgmatting.engine.predictor.Predictor`.
        src: uint8 (H, W, 3) RGB; guide: uint8 (h, w, 3) plate or (H, W) trimap, as the model takes.
        align: warp a plate of any size onto the photo first (:class:`~bgmatting.data.alignment.PlateAligner`).
    Returns:
        ``{"pha": float32 (H, W) in [0, 1], "fgr": float32 (H, W, 3) in [0, 1]}``.
    Raises:
        ApiError 422: size mismatch (without ``align``), or any input the model refuses.
    """
    kind = guide_kind(predictor)
    if kind == "bgr" and align:
        guide = PlateAligner("full")(src, guide).plate
    if guide.shape[:2] != src.shape[:2]:
        hint = " (or send align=true to warp a hand-held plate)" if kind == "bgr" else ""
        raise ApiError(422, f"size mismatch: src is {src.shape[1]}x{src.shape[0]} but {kind} is "
                            f"{guide.shape[1]}x{guide.shape[0]}{hint}")
    try:
        out = predictor(src=src, **{kind: guide})
    except UserError as error:
        raise ApiError(422, str(error)) from None
    return {"pha": out["pha"], "fgr": out["fgr"]}


def matte_and_store(predictor, store, src_bytes: bytes, guide_bytes: bytes, max_pixels: int, align: bool,
                    meta: dict) -> str:
    """Decode both uploads, matte, save under a new id (see :class:`~bgmatting.serve.storage.ResultStore`).

    Args:
        src_bytes, guide_bytes: encoded images already passed through :func:`~bgmatting.serve.uploads.check_image`.
        meta: facts for history (``name``, ``job``); ``seconds`` and ``align`` are added.
    Returns:
        the result id.
    """
    kind = guide_kind(predictor)
    start = time.perf_counter()
    src = decode_image(src_bytes, "src", max_pixels)
    guide = decode_image(guide_bytes, kind, max_pixels, grey=kind == "trimap")
    out = matte(predictor, src, guide, align)
    meta = dict(meta, seconds=round(time.perf_counter() - start, 3), align=bool(align), guide=kind)
    return store.save(src, out, meta)

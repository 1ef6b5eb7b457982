"""What predict.py adds to a model's result: the guide the model saw as outputs, and known regions cleaned.

- output type ``bgr``: the plate as the model received it — aligned (``--preprocess-alignment``), resized
  (``--bgr-resize``) or estimated (``--bgr auto``) — for every clean-plate model;
- output type ``trimap``: the trimap the model used — the input trimap, the one built from ``--mask``, or the
  cascade's automatic trimap from BackgroundMattingV2's coarse alpha (its bottleneck, now visible);
- ``--clamp-known``: alpha forced to 0 / 1 where that trimap is 0 / 255, as eval.py's ``--clamp-known``
  (:func:`bgmatting.engine.evaluator.clamp_known`).

The cascade's trimap is read off the input of its ViTMatte part (a forward pre-hook: the 4th channel of the pixel
values), so the cascade runs once and unchanged.

Example:
    >>> predictor = with_guide_outputs(Predictor.from_pretrained("w"), ("com", "trimap"), clamp=True)
    >>> result = predictor(src=photo, trimap=trimap)      # + result["trimap"], float (H, W) in [0, 1]
"""
import numpy as np

from bgmatting.errors import UserError

CASCADE = "bgmv2+vitmatte"


def check_guide_outputs(kind, output_types, clamp: bool) -> None:
    """Raise UserError for ``trimap``/``bgr`` outputs or ``--clamp-known`` a model kind has no guide for."""
    has_trimap = kind.guide == "trimap" or kind.name == CASCADE
    if ("trimap" in output_types or clamp) and not has_trimap:
        what = "--output-types trimap" if "trimap" in output_types else "--clamp-known"
        raise UserError(f"{what} needs a trimap: --model-type vitmatte (--trimap or --mask) or bgmv2+vitmatte (its "
                        f"automatic trimap); {kind.name} uses none")
    if "bgr" in output_types and kind.guide != "bgr":
        raise UserError(f"--output-types bgr is the clean plate; {kind.name} takes a trimap (try --output-types "
                        "trimap)")


def with_guide_outputs(predictor, output_types, clamp: bool = False):
    """``predictor`` itself when nothing is asked, else a :class:`GuideOutputs` around it."""
    if not clamp and not {"trimap", "bgr"} & set(output_types):
        return predictor
    return GuideOutputs(predictor, "trimap" in output_types, "bgr" in output_types, clamp)


def _as_float(image) -> np.ndarray:
    image = np.asarray(image)
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)


class GuideOutputs:
    """A predictor whose result also holds ``trimap`` and/or ``bgr`` (float in [0, 1] at the input's size), with
    alpha clamped to the trimap's known regions when asked.

    Args:
        predictor: a :class:`bgmatting.engine.predictor.Predictor`.
        keep_trimap, keep_bgr, clamp: what to add / do (see the module docstring).
    Input / Output: as the predictor's call; the extra keys are added to its result dict.
    """

    def __init__(self, predictor, keep_trimap: bool, keep_bgr: bool, clamp: bool):
        self.predictor, self.keep_trimap, self.keep_bgr, self.clamp = predictor, keep_trimap, keep_bgr, clamp
        self.kind = predictor.kind
        self._captured = None
        if self.kind.name == CASCADE and (keep_trimap or clamp):
            predictor.runner.model.vitmatte.register_forward_pre_hook(self._capture)  # any backend

    def _capture(self, layer, inputs):
        pixel_values = inputs[0]
        self._captured = np.asarray(pixel_values.numpy()[0, 3], np.float32)  # trimap/255, zero-padded to 32
        return None

    def __call__(self, src, bgr=None, trimap=None):
        self._captured = None
        result = self.predictor(src=src, bgr=bgr, trimap=trimap)
        height, width = src.shape[:2]
        if self.keep_bgr and bgr is not None:
            result["bgr"] = _as_float(bgr)
        if self.keep_trimap or self.clamp:
            if trimap is not None:
                used = _as_float(trimap)
            else:  # the cascade's automatic trimap, as ViTMatte received it
                used = np.round(self._captured[:height, :width] * 255.0) / 255.0
            if self.keep_trimap:
                result["trimap"] = used
            if self.clamp:
                from bgmatting.engine.evaluator import clamp_known

                result["pha"] = clamp_known(result["pha"], np.round(used * 255.0).astype(np.uint8))
        return result

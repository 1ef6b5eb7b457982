"""The public dataset layouts (DESIGN.md §3): listing, pairing and loading with clear errors.

- Foreground/alpha pairs: ``ROOT/fgr/…`` + ``ROOT/pha/…`` paired by sorted relative path (extension ignored),
  e.g. VideoMatte240K frames or PhotoMatte13K (:func:`fgr_pha_items`).
- PhotoMatte85: a folder of RGBA PNGs with the alpha in the alpha channel, or the split ``fgr/`` + ``pha/``
  form (:func:`photomatte85_items`, :func:`load_foreground`).
- Composition-1k / Distinctions-646 test: ``merged/``, ``alpha_copy/``, ``trimaps/`` with equal names, plus
  optional ``fg/NAME.png`` for ``merged/NAME_BGINDEX.png`` (:func:`comp1k_items`).
- Backgrounds: any folder of images (:func:`background_paths`).
- Validation splits: ``…/valid`` or ``…/test`` (VideoMatte240K ships ``test/``, the others and the synthetic
  generator ``valid/``): a configured one that does not exist is looked for under the other name
  (:func:`split_folders`); when both exist, the configured one is used.
- Saved predictions against ground truth (:func:`prediction_items`).

Items are dicts ``{"name": relative path without extension, <role>: Path, …}`` sorted by name. Every problem
(missing or empty folder, count mismatch, a name without its partner, a duplicate name, an RGBA file without
alpha, a trimap with values other than 0/128/255) raises :class:`bgmatting.errors.UserError` naming the files.

Example:
    >>> from bgmatting.data.layouts import photomatte85_items, load_foreground
    >>> items = photomatte85_items("data/PhotoMatte85")
    >>> fgr, pha = load_foreground(items[0])   # float32 (H, W, 3) and (H, W), in [0, 1]
"""
from pathlib import Path

import numpy as np

from bgmatting.data.io import check_same_size, list_images, read_alpha, read_image, read_rgba, read_trimap
from bgmatting.errors import UserError

TRIMAP_VALUES = (0, 128, 255)
#: the names a validation split goes by, interchangeable
VALIDATION_SPLITS = ("valid", "test")


def _names(folder: Path) -> dict:
    """{relative path without extension: file} of the images under ``folder``; rejects duplicate names."""
    names = {}
    for path in list_images(folder):
        name = path.relative_to(folder).with_suffix("").as_posix()
        if name in names:
            raise UserError(f"two images share the name '{name}' in {folder}: {names[name].name} and {path.name}")
        names[name] = path
    return names


def pair_folders(folders: dict) -> list:
    """Pair the images of several folders by relative path without extension.

    Args:
        folders: {role: folder}, e.g. ``{"fgr": root / "fgr", "pha": root / "pha"}``; the first role leads.
    Returns:
        list of ``{"name": str, role: Path, …}`` sorted by name.
    Raises:
        UserError: a folder is missing or holds no image; counts differ; a name has no partner.
    """
    listed = {role: _names(Path(folder)) for role, folder in folders.items()}
    (lead_role, lead), *others = listed.items()
    for role, names in others:
        only_lead = sorted(set(lead) - set(names))
        only_other = sorted(set(names) - set(lead))
        if not only_lead and not only_other:
            continue
        example = (f"'{only_lead[0]}' is in {lead_role}/ ({folders[lead_role]}) but not in {role}/ ({folders[role]})"
                   if only_lead else
                   f"'{only_other[0]}' is in {role}/ ({folders[role]}) but not in {lead_role}/ ({folders[lead_role]})")
        if len(lead) != len(names):
            raise UserError(f"count mismatch: {len(lead)} images in {folders[lead_role]} but {len(names)} in "
                            f"{folders[role]}; e.g. {example}")
        raise UserError(f"unpaired names: {example}")
    return [{"name": name, **{role: listed[role][name] for role in listed}} for name in sorted(lead)]


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise UserError(f"{what} folder not found: {path}")
    return path


def split_folders(path) -> list:
    """The folders a validation split configured as ``path`` may be, in order: ``path`` itself and, when its last
    part is ``valid`` or ``test``, the same folder under the other name.

    Example:
        >>> split_folders("data/VideoMatte240K/test")
        [PosixPath('data/VideoMatte240K/test'), PosixPath('data/VideoMatte240K/valid')]
    """
    path = Path(path)
    if path.name not in VALIDATION_SPLITS:
        return [path]
    return [path] + [path.with_name(name) for name in VALIDATION_SPLITS if name != path.name]


def fgr_pha_items(root) -> list:
    """Foreground/alpha pairs of ``ROOT/fgr`` and ``ROOT/pha`` (e.g. ``VideoMatte240K/train``).

    Returns:
        list of ``{"name", "fgr", "pha"}``.
    """
    root = _require_dir(Path(root), "dataset")
    return pair_folders({"fgr": _require_dir(root / "fgr", "fgr"), "pha": _require_dir(root / "pha", "pha")})


def photomatte85_items(root) -> list:
    """PhotoMatte85 items: ``ROOT/fgr`` + ``ROOT/pha`` when both exist, else the RGBA images directly in ROOT.

    Returns:
        list of ``{"name", "fgr", "pha"}`` or ``{"name", "rgba"}``; pass each to :func:`load_foreground`.
    """
    root = _require_dir(Path(root), "PhotoMatte85")
    if (root / "fgr").is_dir() and (root / "pha").is_dir():
        return fgr_pha_items(root)
    return [{"name": path.stem, "rgba": path} for path in list_images(root, recursive=False)]


def load_foreground(item: dict):
    """Read a foreground item of :func:`photomatte85_items` or :func:`fgr_pha_items`.

    Returns:
        (fgr, pha): float32 (H, W, 3) RGB and float32 (H, W), both in [0, 1].
    Raises:
        UserError: unreadable file, fgr/pha size mismatch, or an RGBA file whose alpha is missing/all opaque.
    """
    if "rgba" in item:
        rgba = read_rgba(item["rgba"])
        if rgba[:, :, 3].min() == 255:
            raise UserError(f"no alpha in {item['rgba']}: PhotoMatte85 images are RGBA PNGs with the ground-truth "
                            "alpha in the alpha channel (or use the fgr/ + pha/ form)")
        return rgba[:, :, :3].astype(np.float32) / 255.0, rgba[:, :, 3].astype(np.float32) / 255.0
    fgr, pha = read_image(item["fgr"]), read_alpha(item["pha"])
    check_same_size(fgr, pha, item["fgr"], item["pha"])
    return fgr.astype(np.float32) / 255.0, pha


def comp1k_items(root) -> list:
    """Composition-1k style test items: ``merged/``, ``alpha_copy/``, ``trimaps/`` with equal names.

    When ``ROOT/fg`` exists, an item ``NAME_K`` also gets ``"fg"`` = ``fg/NAME.*`` if that file exists.

    Returns:
        list of ``{"name", "merged", "alpha", "trimap"[, "fg"]}``.
    """
    root = _require_dir(Path(root), "Composition-1k")
    items = pair_folders({"merged": _require_dir(root / "merged", "merged"),
                          "alpha": _require_dir(root / "alpha_copy", "alpha_copy"),
                          "trimap": _require_dir(root / "trimaps", "trimaps")})
    if (root / "fg").is_dir():
        foregrounds = _names(root / "fg")
        for item in items:
            fg_name = item["name"].rsplit("_", 1)[0]
            if fg_name in foregrounds:
                item["fg"] = foregrounds[fg_name]
    return items


def background_paths(root) -> list:
    """Sorted image files of a backgrounds folder (recursive)."""
    return list_images(_require_dir(Path(root), "backgrounds"))


def prediction_items(pred_dir, gt_dir, trimap_dir=None) -> list:
    """Saved predicted alphas paired with ground-truth alphas (and trimaps) by relative path.

    Returns:
        list of ``{"name", "pred", "gt"[, "trimap"]}``.
    """
    folders = {"pred": _require_dir(Path(pred_dir), "prediction"), "gt": _require_dir(Path(gt_dir), "ground-truth")}
    if trimap_dir is not None:
        folders["trimap"] = _require_dir(Path(trimap_dir), "trimap")
    return pair_folders(folders)


def load_trimap(path, threshold=None) -> np.ndarray:
    """Read a trimap and check it holds only 0/128/255, or quantise it.

    Args:
        threshold: None → values other than 0/128/255 are an error; an int t → v < t becomes 0,
            v ≥ 255 − t becomes 255, the rest 128 (85 gives ViTMatte's <85 / ≥170 split).
    Returns:
        uint8 (H, W) with values in {0, 128, 255}.
    """
    trimap = read_trimap(path)
    if threshold is not None:
        if not 0 < threshold < 128:
            raise UserError(f"--trimap-threshold must be in 1..127, got {threshold}")
        quantised = np.full(trimap.shape, 128, np.uint8)
        quantised[trimap < threshold] = 0
        quantised[trimap >= 255 - threshold] = 255
        return quantised
    bad = ~np.isin(trimap, TRIMAP_VALUES)
    if bad.any():
        values = np.unique(trimap[bad])
        raise UserError(f"trimap {path} has values other than 0/128/255 ({len(values)} others, e.g. "
                        f"{', '.join(str(v) for v in values[:3])}); pass --trimap-threshold to quantise it")
    return trimap

"""Write procedural matting data in the public dataset layouts (deterministic by --seed).

Example:
    python tools/make_synthetic.py --out data/synthetic --layout all --n 16 --size 128 --seed 0
    python tools/make_synthetic.py --out data/vm_like --layout fgr_pha --valid-name test   # VideoMatte240K's name

Layouts (under --out; with --layout all each goes to the sub-folder named in brackets):
    fgr_pha       [videomatte/]   train/{fgr,pha}/clipNNNN/NNNN.png and valid/... (or test/..., --valid-name)
    photomatte85  [photomatte85/] NNNN.png RGBA, alpha in the alpha channel
    comp1k        [comp1k/]       merged/ alpha_copy/ trimaps/ fg/ bg/
    backgrounds   [backgrounds/]  train/NNNN.jpg and valid/NNNN.jpg (or test/..., --valid-name)
    clean_plate   [clean_plate/]  src/ bgr/ pha/ fgr/ (photo, clean plate, ground truth)
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bgmatting.data import synthetic  # noqa: E402
from bgmatting.errors import UserError, cli_main  # noqa: E402

SUBFOLDERS = {
    "fgr_pha": "videomatte",
    "photomatte85": "photomatte85",
    "comp1k": "comp1k",
    "backgrounds": "backgrounds",
    "clean_plate": "clean_plate",
}


def write_layout(layout: str, root: Path, n: int, size, seed: int, valid_name: str = "valid") -> list:
    """Write one layout under ``root`` (``valid_name``: the validation split's folder); returns the written files."""
    if layout == "fgr_pha":
        return synthetic.make_fgr_pha_dataset(root, n, size, seed, valid_name=valid_name)
    if layout == "photomatte85":
        return synthetic.make_photomatte85(root, n, size, seed)
    if layout == "comp1k":
        return synthetic.make_comp1k(root, n, size, seed)
    if layout == "backgrounds":
        # Distinct seeds so the validation backgrounds are not copies of the training ones.
        return (synthetic.make_backgrounds(root / "train", n, size, seed)
                + synthetic.make_backgrounds(root / valid_name, max(2, n // 4), size, seed + 1_000_003))
    return synthetic.make_clean_plate_pairs(root, n, size, seed)


def parse_args(argv=None):
    from bgmatting.cli_help import HelpFormatter

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--layout", default="all", choices=["all", *SUBFOLDERS],
                        help="which public layout to write (all: every one)")
    parser.add_argument("--n", type=int, default=8, help="items per layout (training items for fgr_pha)")
    parser.add_argument("--size", type=int, nargs="+", default=[128], help="SIZE or HEIGHT WIDTH in pixels")
    parser.add_argument("--seed", type=int, default=0, help="generator seed: the same seed writes the same files")
    parser.add_argument("--valid-name", default="valid", choices=["valid", "test"],
                        help="folder name of the validation splits (default valid; VideoMatte240K says test)")
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    if len(args.size) > 2 or min(args.size) < 16:
        raise UserError(f"--size takes SIZE or HEIGHT WIDTH, each at least 16 pixels; got {args.size}")
    size = args.size[0] if len(args.size) == 1 else tuple(args.size)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out exists and is not a folder: {out}")
    layouts = list(SUBFOLDERS) if args.layout == "all" else [args.layout]
    for layout in layouts:
        root = out / SUBFOLDERS[layout] if args.layout == "all" else out
        files = write_layout(layout, root, args.n, size, args.seed, args.valid_name)
        print(f"{layout}: {len(files)} files in {root}")


if __name__ == "__main__":
    main()

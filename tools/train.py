r"""Train BackgroundMattingV2 (MattingBase or MattingRefine) or ViTMatte from a YAML config.

Example:
    python tools/make_synthetic.py --out data/synthetic
    python tools/train.py --config configs/bgmv2_tiny.yaml --save-dir output/tiny --opts train.iters=20

    # the paper's stage 1 (paths also from the VIDEOMATTE240K / BACKGROUNDS environment variables)
    python tools/train.py --config configs/bgmv2/base_resnet50_videomatte240k.yaml --save-dir output/stage1 \
        --pretrained pretraining/best_deeplabv3_resnet50_voc_os16.pth

    # ViTMatte-S with the official recipe from DINO ViT-S/16 weights (or ./run.sh vitmatte)
    python tools/train.py --config configs/vitmatte/train_vitmatte_s.yaml --save-dir output/vitmatte \
        --pretrained pretrained/dino_deitsmall16_pretrain.pth

    # data parallel (GPUs, or CPU processes)
    python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py --config ... --save-dir ...

A run restarted with the same --save-dir resumes from SAVE_DIR/latest; --resume-model names another
checkpoint folder. See bgmatting/engine/trainer.py for everything written to --save-dir.
"""
import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", message=".*ccache.*")
warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")

from bgmatting.errors import cli_main  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config (configs/...)")
    parser.add_argument("--opts", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. train.iters=100 model.backbone=mobilenetv2 (repeatable)")
    parser.add_argument("--save-dir", default="output", help="checkpoints and logs (default: output)")
    parser.add_argument("--resume-model", default=None, help="checkpoint folder to resume from")
    parser.add_argument("--pretrained", default=None,
                        help="backbone initialisation (BGMv2: ImageNet or DeepLabV3 weights; ViTMatte: DINO/MAE ViT); "
                             "= model.pretrained")
    parser.add_argument("--seed", type=int, default=None, help="random seed (= train.seed)")
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    opts = list(args.opts)
    if args.pretrained is not None:
        opts.append(f"model.pretrained={args.pretrained}")
    if args.seed is not None:
        opts.append(f"train.seed={args.seed}")
    from bgmatting.engine.vitmatte_trainer import load_training_config

    trainer_class, cfg = load_training_config(args.config, opts)  # the trainer for the config's model type
    result = trainer_class(cfg, args.save_dir, args.resume_model).train()
    print(f"done: iteration {result['iteration']}, best validation SAD {result['best_sad']:.4f}, "
          f"outputs in {result['save_dir']}")
    return result


if __name__ == "__main__":
    main()

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

    # continue output/tiny deliberately with another learning rate
    python tools/train.py --config configs/bgmv2_tiny.yaml --save-dir output/tiny --resume output/tiny/latest \
        --opts train.iters=40 train.lr.decoder=1e-4

    # data parallel (GPUs, or CPU processes)
    python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py --config ... --save-dir ...

Resuming: a run restarted with the same --save-dir and the same resolved config resumes from SAVE_DIR/latest
("resumed from … at iteration N"); with another config it stops and names the keys that differ. --fresh starts
over in SAVE_DIR (its earlier checkpoints and logs are removed); --resume PATH (alias --resume-model) continues
the checkpoint folder PATH (or a run folder's latest/) whatever its config. Ctrl-C or SIGTERM stops cleanly; the
last checkpoint resumes. Bad files in the data are skipped with a warning; more than data.max_bad_share
(default 0.01) of a split's files bad stops the run. See bgmatting/engine/trainer.py for everything written to
--save-dir.
"""
import argparse
import signal
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
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", "--resume-model", dest="resume", default=None, metavar="PATH",
                       help="checkpoint folder (or run folder) to continue, even with another config")
    start.add_argument("--fresh", action="store_true",
                       help="start over in --save-dir, removing the checkpoints and logs of the run there")
    parser.add_argument("--pretrained", default=None,
                        help="backbone initialisation (BGMv2: ImageNet or DeepLabV3 weights; ViTMatte: DINO/MAE ViT); "
                             "= model.pretrained")
    parser.add_argument("--seed", type=int, default=None, help="random seed (= train.seed)")
    return parser.parse_args(argv)


def stop_on_sigterm():
    """Make SIGTERM stop training as Ctrl-C does (a KeyboardInterrupt), instead of Paddle's handler, which aborts
    with a C++ stack. Call after Paddle is imported (it installs its handler then)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    opts = list(args.opts)
    if args.pretrained is not None:
        opts.append(f"model.pretrained={args.pretrained}")
    if args.seed is not None:
        opts.append(f"train.seed={args.seed}")
    from bgmatting.engine.vitmatte_trainer import load_training_config

    stop_on_sigterm()
    trainer_class, cfg = load_training_config(args.config, opts)  # the trainer for the config's model type
    trainer = trainer_class(cfg, args.save_dir, args.resume, args.fresh, source=args.config)
    if trainer.resumed_from is not None and trainer.rank == 0:
        print(f"resumed from {trainer.resumed_from} at iteration {trainer.iteration}", flush=True)
    try:
        result = trainer.train()
    except KeyboardInterrupt:
        print(f"stopped at iteration {trainer.iteration}; the same command resumes from the last checkpoint in "
              f"{args.save_dir}", file=sys.stderr)
        raise
    print(f"done: iteration {result['iteration']}, best validation SAD {result['best_sad']:.4f}, "
          f"outputs in {result['save_dir']}")
    return result


if __name__ == "__main__":
    main()

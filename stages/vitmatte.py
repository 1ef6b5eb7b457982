"""ViTMatte-S training with the official recipe (configs/vitmatte/train_vitmatte_s.yaml).

Example:
    VITMATTE_TRAIN=/data/AdobeImageMatting/train VITMATTE_BACKGROUNDS=/data/coco/train2014 \
        ./run.sh vitmatte --pretrained pretrained/dino_deitsmall16_pretrain.pth

    # the tiny model on synthetic data (seconds on a CPU)
    python tools/make_synthetic.py --out data/synthetic && ./run.sh vitmatte --config configs/vitmatte/tiny.yaml \
        --save-dir output/vitmatte_tiny

Writes output/vitmatte/ (best_model/model.pdparams loads with predict.py --model-type vitmatte). Other flags go to
tools/train.py (a later --config / --save-dir wins).
"""
from common import Stage, run

STAGE = Stage("vitmatte", "configs/vitmatte/train_vitmatte_s.yaml", "output/vitmatte")

if __name__ == "__main__":
    run(STAGE)

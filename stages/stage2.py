"""Stage 2: MattingRefine (ResNet-50) on VideoMatte240K from stage 1's best model (official train_refine.py).

Example:
    VIDEOMATTE240K=/data/VideoMatte240K_JPEG_SD BACKGROUNDS=/data/Backgrounds ./run.sh stage2

Reads output/stage1/best_model/model.pdparams, writes output/stage2/. Other flags go to tools/train.py.
"""
from common import Stage, run

STAGE = Stage("stage2", "configs/bgmv2/refine_resnet50_videomatte240k.yaml", "output/stage2", previous="output/stage1")

if __name__ == "__main__":
    run(STAGE)

"""Stage 3: fine-tune MattingRefine on PhotoMatte13K, Distinctions-646 or your own fgr/ pha/ folders,
from stage 2's best model.

Example:
    PHOTOMATTE13K=/data/my_people BACKGROUNDS=/data/Backgrounds ./run.sh stage3
    # PHOTOMATTE13K holds train/{fgr,pha}/ and valid/{fgr,pha}/

Reads output/stage2/best_model/model.pdparams, writes output/stage3/. Other flags go to tools/train.py.
"""
from common import Stage, run

STAGE = Stage("stage3", "configs/bgmv2/refine_resnet50_photomatte13k.yaml", "output/stage3", previous="output/stage2")

if __name__ == "__main__":
    run(STAGE)

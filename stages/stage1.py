r"""Stage 1: MattingBase (ResNet-50) on VideoMatte240K, as the paper's first stage (official train_base.py).

Example:
    VIDEOMATTE240K=/data/VideoMatte240K_JPEG_SD BACKGROUNDS=/data/Backgrounds \
        ./run.sh stage1 --pretrained pretraining/best_deeplabv3_resnet50_voc_os16.pth

Writes output/stage1/ (best_model/ is what stage 2 starts from). Other flags go to tools/train.py.
"""
from common import Stage, run

STAGE = Stage("stage1", "configs/bgmv2/base_resnet50_videomatte240k.yaml", "output/stage1")

if __name__ == "__main__":
    run(STAGE)

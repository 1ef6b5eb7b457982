"""`python inference_images.py …` runs the official BackgroundMattingV2 inference_images.py command line on this
library (bgmatting/pipeline/official.py; `python inference_images.py --help` for the flags and an example)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bgmatting.pipeline.official import images_main  # noqa: E402

images_main()

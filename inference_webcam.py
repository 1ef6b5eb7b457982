"""`python inference_webcam.py …` runs the official BackgroundMattingV2 inference_webcam.py command line on this
library (bgmatting/pipeline/official.py; `python inference_webcam.py --help` for the flags and an example)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bgmatting.pipeline.official import webcam_main  # noqa: E402

webcam_main()

"""`python inference_video.py …` runs the official BackgroundMattingV2 inference_video.py command line on this
library (bgmatting/pipeline/official.py; `python inference_video.py --help` for the flags and an example)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bgmatting.pipeline.official import video_main  # noqa: E402

video_main()

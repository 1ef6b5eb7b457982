"""`python predict.py ...` runs tools/predict.py: background matting with a clean plate (see there for flags)."""
from tools.predict import main

main()

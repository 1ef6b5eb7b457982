"""Shared pytest set-up: the repository root on sys.path, Paddle's start-up warning silenced, CPU device."""
import os
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
warnings.filterwarnings("ignore", message="No ccache found")

"""Shared pytest set-up: the repository root on sys.path, Paddle's start-up warning silenced, CPU device."""
import os
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
warnings.filterwarnings("ignore", message="No ccache found")


def run_script(*args):
    """Run ``python ARGS…`` from the repository root as a user would; returns the CompletedProcess (text output)."""
    import subprocess

    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True)

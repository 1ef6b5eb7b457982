"""Where the command-line tools live, and how the ``bgmatting`` command (:mod:`bgmatting.cli`) runs them.

The tools stay scripts of the repository — ``tools/*.py``, ``stages/demo.py``, with ``configs/`` beside them — so
``python tools/train.py …`` and ``python predict.py …`` keep working from a clone. The ``bgmatting`` command loads
the same files by path and calls their ``main(argv)``; nothing is moved or copied by hand:

- in a clone or an editable install (``pip install -e .``), the tools root is the clone itself;
- in a regular install (``pip install .``), the wheel carries copies of ``tools/``, ``stages/`` and ``configs/`` as
  data files under ``<prefix>/share/bgmatting/`` (see pyproject.toml), which mirror the repository's layout, so
  the scripts' own ``ROOT``-relative paths (``configs/…`` for the demo) resolve there too.

The official-compatible commands (``webcam``, ``inference-images``, ``inference-video``) live in the package
(:mod:`bgmatting.pipeline.official`) and need no tools root.

Example:
    >>> run_tool("predict", ["--help"])            # what `bgmatting predict --help` does
    >>> tools_root()
    PosixPath('/home/me/bgmatting')
"""
import importlib
import importlib.util
import os
import sys
import sysconfig
from pathlib import Path

from bgmatting.errors import UserError

#: subcommand → (where: "PATH" relative to the tools root, or "module:function" in the package; one-line help)
TOOLS = {
    "predict": ("tools/predict.py", "matte a photo, a folder or a video with its clean plate (or a trimap)"),
    "eval": ("tools/eval.py", "matting metrics (SAD, MSE, Grad, Conn) over a test set or saved predictions"),
    "train": ("tools/train.py", "train BackgroundMattingV2 / ViTMatte from a YAML config"),
    "convert": ("tools/convert_weights.py", "official PyTorch / Hugging Face weights -> a Paddle model folder"),
    "export": ("tools/export.py", "static export for Paddle Inference and ONNX"),
    "serve": ("tools/serve.py", "the local web app and HTTP API"),
    "benchmark": ("tools/benchmark.py", "speed of the backends (and of the official PyTorch model)"),
    "demo": ("stages/demo.py", "synthetic data -> a tiny training run -> evaluation (about two minutes on CPU)"),
    "make-synthetic": ("tools/make_synthetic.py", "write procedural matting data in the public layouts"),
    "webcam": ("bgmatting.pipeline.official:webcam_main",
               "live matting of a camera (or a video standing in for one), as the official inference_webcam.py"),
    "inference-images": ("bgmatting.pipeline.official:images_main",
                         "the official inference_images.py command line"),
    "inference-video": ("bgmatting.pipeline.official:video_main", "the official inference_video.py command line"),
}


def _has_tools(root: Path) -> bool:
    return (root / "tools" / "predict.py").is_file()


def candidate_roots() -> list:
    """Folders that may hold ``tools/``: the clone this package sits in, then ``share/bgmatting`` of the install
    scheme(s) of this interpreter (``$BGMATTING_TOOLS_ROOT`` first when set)."""
    roots = []
    if os.environ.get("BGMATTING_TOOLS_ROOT"):
        roots.append(Path(os.environ["BGMATTING_TOOLS_ROOT"]))
    roots.append(Path(__file__).resolve().parents[1])
    data_dirs = [sysconfig.get_path("data"), sys.prefix]
    for scheme in ("posix_user", "nt_user", "osx_framework_user"):
        try:
            data_dirs.append(sysconfig.get_path("data", scheme))
        except KeyError:
            pass
    roots.extend(Path(d) / "share" / "bgmatting" for d in data_dirs if d)
    return roots


def tools_root() -> Path:
    """The folder holding ``tools/``, ``stages/`` and ``configs/`` (see the module docstring).

    Raises:
        UserError: none of :func:`candidate_roots` has them (an incomplete install).
    """
    for root in candidate_roots():
        if _has_tools(root):
            return root
    raise UserError("cannot find the bgmatting tools (tools/predict.py) in the clone or in "
                    f"{sys.prefix}/share/bgmatting; reinstall with `pip install .` from the repository")


def load_tool(name: str):
    """The ``main(argv)`` function of subcommand ``name`` (see :data:`TOOLS`)."""
    if name not in TOOLS:
        raise UserError(f"unknown command {name!r}; choose one of {', '.join(TOOLS)}")
    where = TOOLS[name][0]
    if ":" in where:
        module, function = where.split(":")
        return getattr(importlib.import_module(module), function)
    path = tools_root() / where
    module_name = "bgmatting_tool_" + path.stem
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return sys.modules[module_name].main


def run_tool(name: str, argv) -> int:
    """Run subcommand ``name`` with arguments ``argv`` (its ``--help`` and messages name it ``bgmatting NAME``).

    Returns:
        the exit status (0 unless the tool returned an int); tools exit themselves on errors (status 2).
    """
    main = load_tool(name)
    saved = sys.argv[0]
    sys.argv[0] = f"bgmatting {name}"  # argparse's prog
    try:
        status = main(list(argv))
    finally:
        sys.argv[0] = saved
    return status if isinstance(status, int) else 0

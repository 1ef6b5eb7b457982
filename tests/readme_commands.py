"""Extract the shell commands of README.md (and docs/*.md) and run each one the way a user would, on tiny
fixture files, to keep the documentation honest (tests/test_readme_commands.py).

Nothing here knows the README's sections or line numbers: every fenced ``bash``/``sh``/``shell``/``console``
block of every document is read, each command is classified by what it runs, and the files it reads are made up
from their names and flags. The rules, per class of command (``classify``):

- ``run`` (default; ``python X.py``, ``python tools/X.py``, ``bgmatting X`` — run as ``python -m bgmatting X``
  when the console script is not installed —, ``./run.sh X``, ``python -m bgmatting X``): runs in its own
  scratch copy of the repository (code, configs, ``run.sh``; the venv's python first on PATH, ``$HOME`` a scratch
  folder, ``run.sh``'s venv cache a scratch folder where the requirement files' hash names the repository's own
  venv, so ``./run.sh`` never installs one) holding the inputs it names. An input written by an earlier command
  of the documents (``--save-dir export/x`` … ``--model-checkpoint export/x``) is copied from that command's
  folder; any other is made from its name and flag (``Fixtures``: 64×48 images, a 6-frame clip, official-format
  random ``pytorch_<backbone>.pth``, a tiny Hugging Face ViTMatte folder, converted weights, an export, a
  2-iteration training run, the synthetic datasets in every public layout). It must exit 0, and every output it
  names (``--output-dir``, ``--save-dir``, ``--dst``, ``--out``, ``-o``) must exist afterwards, with a file
  or folder named after each of its ``--output-types`` (``out/pha/x.png``, ``out/pha.mp4``). Tools whose cost
  is only size get size flags appended (later flags win in argparse): the demo ``--iters 2 --refine-iters 2
  --n-train 4 --n-eval 2``, training ``--opts train.iters=2 …``, eval ``--resolution 64 --limit 2``,
  make_synthetic ``--n 2 --size 64``, the cascade study, eval_alignment and the reference run likewise
  (``SHRINK``). ``./run.sh setup`` is one of these (with that cache it only links the venv).
- ``train``: a training command on the synthetic-data configs (the config mentions ``synthetic``) — as ``run``,
  with ``data/synthetic`` present.
- ``train-real-data``: any other training command (``tools/train.py``, ``bgmatting train``, ``./run.sh
  stage1|stage2|stage3|vitmatte``, ``python -m paddle.distributed.launch … tools/train.py`` — run without the
  launcher, which needs several processes or GPUs; ``launch … predict.py|eval.py`` is a ``run``: the launcher
  really starts its CPU processes). The datasets (``/data/…``, the configs' defaults) are not
  here; a stage's previous best model is made (random weights) so the command gets to its data. It must stop with
  exit 2 and exactly one ``error:`` line naming a missing dataset folder (``data.…`` key or ``/data`` path) —
  proof that its flags, config and ``--opts`` keys are still accepted — never with an argparse usage error
  ("unrecognized arguments", "invalid choice", "required") or a traceback.
- ``help`` (commands whose cost is only time — ``tools/benchmark.py``; ``webcam`` without a video file, which
  needs a camera and a display; synopses whose arguments are a bare ``…``): ``TOOL --help`` exits 0 and lists
  every ``--flag`` the document gives.
- ``serve`` (``./run.sh serve``, ``tools/serve.py``, ``bgmatting serve``): started as written plus ``--port P``
  (a free port) in its own process group; ``/healthz`` must answer 200 within three minutes. The ``curl`` lines
  then run against the first such server (one with random weights when no document starts one), ``:8000``
  rewritten to ``:P``, ``-F x=@file`` inputs and ``-F folder=NAME`` batch folders (under ``--batch-root``) made
  up; ``<id>`` placeholders take the id of the last result (``X-Result-Id``) or job (``job_id``) the earlier
  lines created; a ``jobs/<id>/…`` download first waits for the job to finish. Each must answer 2xx
  (``--fail-with-body``) and write its ``-o`` file.
- set-up steps: ``pip install [-e] .[extras]`` — the target is this project (a ``pyproject.toml``) and every
  extra is declared in it (tests/test_packaging.py really installs it); ``git clone URL [DIR]`` — a URL, and a
  following ``cd DIR`` enters the clone (the scratch copy stands for it); ``cd DIR`` otherwise must name a folder
  of the repository; ``source``/``.`` a file of the repository (``.venv/bin/activate``); ``export VAR=value``
  and bare ``VAR=value`` lines set the environment of the commands after them; ``pytest``/``python -m pytest``
  — the test files it names exist (the suite runs in CI).
- ``allowlisted``: ``ALLOWLIST`` below, each with its reason; a test checks every entry still occurs.
- anything else (``unknown``) fails, naming the line: add a rule here or an allowlist entry.

Lines: backslash continuations are joined, ``# comments`` and blank lines dropped, a ``$ `` prompt removed
(``console`` blocks: only prompted lines), ``a && b`` / ``a; b`` are two commands, of ``a | b`` only ``a`` runs;
leading ``VAR=value`` words are the command's environment; a command repeated word for word runs once.
Elisions: ``python predict.py ... --src x`` means the flags of the nearest earlier full command of the same tool
in the same document, with the flags given here replacing theirs; ``--flag …`` takes the fixture ``FILL[flag]``.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable

SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}
ELLIPSIS = "…"

#: command text (normalised: one space between words, no comment) → why it is not run. Keep it short.
ALLOWLIST = {
    "./run.sh test": "runs the whole test suite, this test included (recursion; ~4 min) — CI runs it as .ci/run",
}

#: a flag given as ``--flag …`` in a README command → the fixture used for it
FILL = {"--src": "photo.png", "--bgr": "plate.png", "--trimap": "trimap.png", "--mask": "mask.png",
        "--target-bgr": "beach.jpg", "--model-checkpoint": "output/demo/stage2", "--data": "data/PhotoMatte85",
        "--backgrounds": "data/backgrounds/valid", "--output-dir": "out", "--save-dir": "output/readme",
        "--output-types": "pha"}

#: flags whose value is something the command writes (never made up front; must exist afterwards)
OUTPUT_FLAGS = {"--output-dir", "--save-dir", "--dst", "--out", "-o", "--output", "--storage-dir"}
#: size flags appended to commands whose cost is only time (argparse: the later flag wins)
SHRINK = {
    "demo": ["--iters", "2", "--refine-iters", "2", "--n-train", "4", "--n-eval", "2"],
    "train": ["--opts", "train.iters=2", "train.batch_size=2", "train.save_interval=2", "train.log_interval=1"],
    "eval": ["--resolution", "64", "--limit", "2"],
    "make-synthetic": ["--n", "2", "--size", "64"],
    "vitmatte_cascade": ["--iters", "2", "--vitmatte-iters", "2", "--n-train", "4", "--n-eval", "2"],
    "eval_alignment": ["--pairs", "2", "--size", "96", "128"],
    "reference": ["--smoke"],
}
TRAIN_STAGES = {"stage1", "stage2", "stage3", "vitmatte"}
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm")
USAGE_ERRORS = ("unrecognized arguments", "invalid choice", "the following arguments are required",
                "expected one argument", "usage:", "Traceback")
H, W = 48, 64


# ------------------------------------------------------------------------------------------------ extraction
@dataclass
class Command:
    """One command of a document: ``text`` as written (continuations joined, comment dropped), ``env`` its
    leading ``VAR=value`` assignments, ``argv`` the rest (shlex words), ``doc``/``line`` where it starts."""

    doc: Path
    line: int
    text: str
    env: dict
    argv: list
    block: int

    @property
    def where(self) -> str:
        try:
            name = self.doc.relative_to(ROOT)
        except ValueError:
            name = self.doc
        return f"{name}:{self.line}"


def documents(root: Path = ROOT) -> list:
    """README.md and every docs/*.md (recursively) that exists."""
    docs = [root / "README.md"] if (root / "README.md").exists() else []
    if (root / "docs").is_dir():
        docs += sorted((root / "docs").rglob("*.md"))
    return docs


def normalise(text: str) -> str:
    return " ".join(text.split())


def extract(doc: Path) -> list:
    """Every command of the shell blocks of ``doc`` (see the module docstring)."""
    commands, lang, block = [], None, 0
    pending, start = "", 0
    for number, raw in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        fence = re.match(r"^(`{3,}|~{3,})\s*([\w+-]*)", stripped)
        if fence:
            if lang is None:
                lang, block = (fence.group(2).lower() or "none"), block + 1
            else:
                lang = None
            pending = ""
            continue
        if lang not in SHELL_LANGS:
            continue
        if lang == "console" and not stripped.startswith("$ ") and not pending:
            continue  # console output
        if stripped.startswith("$ ") and not pending:
            stripped = stripped[2:]
        if not pending:
            start = number
        line = strip_comment(stripped)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = normalise(pending + line)
        pending = ""
        if text:
            commands += parse(doc, start, text, block)
    return commands


def strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` that starts a word outside quotes)."""
    quote, out = None, []
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return "".join(out).rstrip()
        out.append(ch)
    return "".join(out).rstrip()


def parse(doc: Path, line: int, text: str, block: int) -> list:
    """The commands of one line: ``a && b`` and ``a; b`` are two; of ``a | b`` only ``a`` runs."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands, words, skip = [], [], False
    for word in list(lexer) + [";"]:
        if word in (";", "&&", "||", "|"):
            if words and not skip:
                commands.append(words)
            words, skip = [], word == "|"
            continue
        words.append(word)
    out = []
    for words in commands:
        env = {}
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        piece = normalise(" ".join(shlex.quote(w) if w != ELLIPSIS else w for w in words))
        out.append(Command(doc, line, text if len(commands) == 1 else piece, env, words, block))
    return out


def all_commands(root: Path = ROOT) -> list:
    return [c for doc in documents(root) for c in extract(doc)]


# ------------------------------------------------------------------------------------------------ classification
def tool_of(argv: list) -> Optional[tuple]:
    """(tool name, index of its first argument) for the ways a tool is started, or None."""
    if not argv:
        return None
    head = argv[0]
    if head in ("python", "python3", PYTHON):
        if len(argv) > 2 and argv[1] == "-m" and argv[2] == "bgmatting" and len(argv) > 3:
            return argv[3], 4
        if len(argv) > 2 and argv[1] == "-m" and argv[2] == "paddle.distributed.launch":
            script = next((i for i, w in enumerate(argv) if w.endswith(".py")), None)
            return ("launch", script) if script else None
        if len(argv) > 1 and argv[1].endswith(".py"):
            name = Path(argv[1]).stem
            return {"convert_weights": "convert", "make_synthetic": "make-synthetic",
                    "inference_images": "inference-images", "inference_video": "inference-video",
                    "inference_webcam": "webcam"}.get(name, name), 2
    if head in ("bgmatting", "./run.sh", "run.sh") and len(argv) > 1:
        return argv[1], 2
    return None


#: tools run under paddle.distributed.launch as written (they split their work over CPU processes)
LAUNCHED_TOOLS = ("predict", "eval")


def launched(argv: list, script: int) -> str:
    """The tool a ``python -m paddle.distributed.launch … SCRIPT.py`` command starts (``predict``, ``train``…)."""
    return Path(argv[script]).stem


def classify(command: Command) -> str:
    argv = command.argv
    if normalise(" ".join(argv)) in ALLOWLIST or command.text in ALLOWLIST:
        return "allowlisted"
    if not argv or (argv[0] == "export" and all("=" in w for w in argv[1:])):
        return "env"
    if argv[0] == "curl":
        return "curl"
    if argv[0] in ("pip", "pip3") or argv[:3] in (["python", "-m", "pip"], ["python3", "-m", "pip"]):
        return "pip"
    if argv[0] == "git":
        return "git"
    if argv[0] in ("cd", "source", "."):
        return argv[0].replace(".", "source")
    if argv[0] == "pytest" or argv[1:3] == ["-m", "pytest"]:
        return "pytest"
    if argv[0] in ("python", "python3") and argv[1:3] == ["-m", "venv"]:
        return "venv"
    tool = tool_of(argv)
    if tool is None:
        return "unknown"
    name, first = tool
    rest = argv[first:]
    if name == "setup":
        return "setup"
    if ELLIPSIS in rest and not any(w.startswith("-") for w in rest[:rest.index(ELLIPSIS)]):
        return "help"  # a synopsis: `bgmatting convert …`
    if name == "benchmark":
        return "help"
    if name == "serve":
        return "serve"
    if name == "webcam" and (any(w.startswith("camera:") for w in rest)
                             or not any(w.lower().endswith(VIDEO_EXT) for w in rest)):
        return "help"  # a camera and a display: neither is here
    if name == "launch" and launched(argv, first) in LAUNCHED_TOOLS:
        return "run"  # several CPU processes of predict.py / eval.py, as written
    if name in ("train", "launch") or name in TRAIN_STAGES:
        return "train" if synthetic_training(command) else "train-real-data"
    return "run"


def config_of(command: Command) -> Optional[Path]:
    """The config a training command uses: ``--config`` or its stage's."""
    argv = command.argv
    if "--config" in argv:
        return ROOT / argv[argv.index("--config") + 1]
    tool = tool_of(argv)
    if tool and tool[0] in TRAIN_STAGES:
        match = re.search(r'Stage\("[^"]+",\s*"([^"]+)"', (ROOT / "stages" / f"{tool[0]}.py").read_text())
        return ROOT / match.group(1) if match else None
    return None


def previous_stage(argv: list) -> Optional[str]:
    """The save dir of the stage a ``./run.sh stageN`` command starts from (``Stage(…, previous=…)``), or None."""
    tool = tool_of(argv)
    if not tool or tool[0] not in TRAIN_STAGES:
        return None
    match = re.search(r'previous="([^"]+)"', (ROOT / "stages" / f"{tool[0]}.py").read_text())
    return match.group(1) if match else None


def config_text(path: Path) -> str:
    """A config and its ``_base_`` files, concatenated."""
    if path is None or not path.is_file():
        return ""
    text = path.read_text()
    base = re.search(r"^_base_:\s*(\S+)", text, re.M)
    return text + (config_text(path.parent / base.group(1)) if base else "")


def synthetic_training(command: Command) -> bool:
    """A training command whose data is the synthetic set (the tiny configs) and names no outside path."""
    if any(v.startswith("/") for v in command.env.values()) or any(w.startswith("/data") for w in command.argv):
        return False
    return "synthetic" in config_text(config_of(command))


# ------------------------------------------------------------------------------------------------ elisions
def options(words: list) -> list:
    """[(flag, [values])] of an argument list (words before the first flag come as (None, [...]))."""
    out = [(None, [])]
    for word in words:
        if word.startswith("-") and not re.match(r"^-\d", word) and word != "-":
            out.append((word, []))
        else:
            out[-1][1].append(word)
    return out if out[0][1] else out[1:]


def expand(commands: list) -> dict:
    """id(command) → argv with ``...`` elisions and ``…`` values filled (see the module docstring)."""
    result, full = {}, {}
    for command in commands:
        argv = list(command.argv)
        tool = tool_of(argv)
        key = (command.doc, tool[0] if tool else None)
        if tool and "..." in argv:
            first = tool[1]
            base = full.get(key)
            if base is not None:
                given = options(argv[first:])
                named = {flag for flag, _ in given}
                kept = [(f, v) for f, v in options(base[first:]) if f not in named]
                argv = argv[:first] + [w for f, v in kept + [(f, v) for f, v in given if f != "..."]
                                       for w in ([f] if f else []) + v]
                argv = [w for w in argv if w != "..."]
        elif tool:
            full[key] = argv
        filled = []
        for i, word in enumerate(argv):
            if word == ELLIPSIS and i and argv[i - 1] in FILL:
                filled.append(FILL[argv[i - 1]])
            else:
                filled.append(word)
        result[id(command)] = filled
    return result


# ------------------------------------------------------------------------------------------------ fixtures
def copy_tree(src: Path, dst: Path):
    """A copy of ``src`` at ``dst`` (hard links for files; fast and small)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        subprocess.run(["cp", "-al", str(src), str(dst)], check=True)
    else:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def make_clone(dst: Path):
    """A scratch copy of the repository's code: what a clone holds, minus tests, .git and outputs."""
    dst.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("bgmatting", "tools", "stages", "configs"):
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)
    for path in ROOT.iterdir():
        if path.is_file() and (path.suffix in (".py", ".sh", ".txt", ".toml", ".cfg", ".md") or path.name == "run.sh"):
            shutil.copy2(path, dst / path.name)
    if (ROOT / ".venv").exists():
        os.symlink(os.path.realpath(ROOT / ".venv"), dst / ".venv")


def scene(seed: int = 0, shift: int = 0):
    """(photo, plate, alpha): a textured 64×48 plate with shapes, a soft subject composited on it."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    plate = np.stack([(xx * 3 + yy) % 256, (yy * 5) % 256, (xx * 2 + yy * 2) % 256], -1).astype(np.float32)
    plate = plate * 0.6 + rng.uniform(0, 100, (H, W, 3))
    for _ in range(12):
        y, x = rng.integers(0, H - 6), rng.integers(0, W - 6)
        plate[y:y + 5, x:x + 5] = rng.uniform(0, 255, 3)
    cy, cx = H // 2, W // 2 - 10 + shift
    dist = np.sqrt(((yy - cy) / 16.0) ** 2 + ((xx - cx) / 10.0) ** 2)
    alpha = np.clip((1.0 - dist) * 4, 0, 1).astype(np.float32)
    fgr = np.stack([200 + 0 * xx, 60 + xx, 90 + yy], -1).astype(np.float32)
    photo = alpha[..., None] * fgr + (1 - alpha[..., None]) * plate
    return photo.clip(0, 255).astype(np.uint8), plate.clip(0, 255).astype(np.uint8), alpha


def image_kind(name: str, flag: Optional[str] = None) -> str:
    low = name.lower()
    by_flag = {"--bgr": "plate", "--trimap": "trimap", "--mask": "mask", "--target-bgr": "plate",
               "--images-bgr": "plate", "--video-bgr": "plate", "--video-target-bgr": "plate",
               "--backgrounds": "plate", "--gt-dir": "alpha", "--pred-dir": "alpha", "--trimap-dir": "trimap"}
    if flag in by_flag:
        return by_flag[flag]
    for kind, words in (("trimap", ("trimap",)), ("mask", ("mask",)), ("alpha", ("pha", "alpha")),
                        ("plate", ("plate", "bgr", "background", "beach", "bg"))):
        if any(w in low for w in words):
            return kind
    return "photo"


class Fixtures:
    """Makes the inputs a command names, by name and flag; costly ones are built once in ``cache`` and linked
    into each command's folder."""

    def __init__(self, cache: Path, clone: Path, env: dict):
        self.cache, self.clone, self.env = cache, clone, env
        self.cache.mkdir(parents=True, exist_ok=True)
        self.log = []

    # -- helpers
    def _run(self, argv, cwd=None):
        started = time.monotonic()
        done = subprocess.run([PYTHON, *map(str, argv)], cwd=cwd or self.clone, env=self.env, capture_output=True,
                              text=True, timeout=900)
        self.log.append((" ".join(map(str, argv)), round(time.monotonic() - started, 1)))
        if done.returncode:
            raise RuntimeError(f"fixture command failed: {' '.join(map(str, argv))}\n{done.stdout}\n{done.stderr}")
        return done

    def _cached(self, key: str, build) -> Path:
        path = self.cache / key
        if not path.exists():
            tmp = self.cache / f".{key}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            build(tmp)
            tmp.rename(path)
        return path

    @staticmethod
    def write_image(path: Path, kind: str, seed: int = 0, shift: int = 0):
        import cv2
        import numpy as np

        photo, plate, alpha = scene(seed, shift)
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "photo":
            image = photo[..., ::-1]
        elif kind == "plate":
            image = plate[..., ::-1]
        elif kind == "trimap":
            image = np.full(alpha.shape, 128, np.uint8)
            image[alpha > 0.99] = 255
            image[alpha < 0.01] = 0
        elif kind == "mask":
            image = ((alpha > 0.5) * 255).astype(np.uint8)
        else:
            image = (alpha * 255).round().astype(np.uint8)
        if not cv2.imwrite(str(path), image):
            raise RuntimeError(f"cannot write {path}")

    @staticmethod
    def write_video(path: Path, kind: str, frames: int = 6):
        import cv2

        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (W, H))
        for i in range(frames):
            photo, plate, _ = scene(0, shift=4 * i)
            writer.write((plate if kind == "plate" else photo)[..., ::-1].copy())
        writer.release()

    def write_folder(self, path: Path, kind: str, n: int = 2):
        for i in range(n):
            self.write_image(path / f"{i:02d}.png", kind, seed=0, shift=3 * i)

    # -- models
    def official(self, backbone: str) -> Path:
        def build(tmp):
            code = ("import sys, torch; sys.path.insert(0, 'tests'); from bgmv2_reference import reference_model; "
                    f"torch.save(reference_model('mattingrefine', '{backbone}').state_dict(), '{tmp}/model.pth')")
            self._run(["-c", code], cwd=ROOT)
        return self._cached(f"official_{backbone}", build) / "model.pth"

    def hf_vitmatte(self) -> Path:
        def build(tmp):
            code = ("import sys; sys.path.insert(0, 'tests'); from vitmatte_reference import build_reference, TINY; "
                    f"build_reference(TINY).save_pretrained('{tmp}/hf')")
            self._run(["-c", code], cwd=ROOT)
        return self._cached("hf_vitmatte", build) / "hf"

    def converted(self, source: Path, suffix: str) -> Path:
        key = f"converted_{source.parent.name}{suffix.replace('.', '_') or '_dir'}"

        def build(tmp):
            self._run(["tools/convert_weights.py", "--src", source, "--dst", tmp / f"model{suffix}"])
        return self._cached(key, build) / f"model{suffix}"

    def run_folder(self) -> Path:
        def build(tmp):
            data = self.synthetic()
            env_data = dict(self.env, BGM_SYNTHETIC=str(data))
            started = time.monotonic()
            done = subprocess.run([PYTHON, "tools/train.py", "--config", "configs/bgmv2_refine_tiny.yaml",
                                   "--save-dir", str(tmp / "run"), "--opts", *SHRINK["train"][1:]],
                                  cwd=self.clone, env=env_data, capture_output=True, text=True, timeout=900)
            self.log.append(("tiny training run (bgmv2_refine_tiny, 2 iterations)",
                             round(time.monotonic() - started, 1)))
            if done.returncode:
                raise RuntimeError(f"tiny training run failed:\n{done.stdout}\n{done.stderr}")
        return self._cached("run", build) / "run"

    def export(self) -> Path:
        def build(tmp):
            self._run(["tools/export.py", "--model-type", "mattingrefine", "--model-backbone", "mobilenetv2",
                       "--model-path", self.official("mobilenetv2"), "--save-dir", tmp / "export", "--onnx"])
        return self._cached("export", build) / "export"

    def synthetic(self) -> Path:
        """Every public layout (make_synthetic.py --layout all): videomatte/, backgrounds/, photomatte85/, comp1k/."""
        def build(tmp):
            self._run(["tools/make_synthetic.py", "--out", tmp / "data", "--n", "4", "--size", "64", "--seed", "0"])
        return self._cached("synthetic", build) / "data"

    # -- dispatch
    def materialise(self, workdir: Path, value: str, flag: Optional[str], command_argv: list) -> bool:
        """Make ``value`` (relative to ``workdir``) if it is an input this class knows; True if made."""
        if not value or value.startswith(("-", "http", "/")) or value == "auto" or re.match(r"^\d+(,\d+)*$", value):
            return False
        path = workdir / os.path.expanduser(value) if not value.startswith("~") else \
            Path(self.env["HOME"]) / value[2:]
        if path.exists() or "=" in value:
            return False
        name = path.name.lower()
        low = value.lower()
        official = re.search(r"pytorch_(resnet50|resnet101|mobilenetv2)\.pth$", low)
        if official:
            copy_tree(self.official(official.group(1)), path)
        elif "vitmatte" in low and ("safetensors" in low or "." not in name):
            target = path.parent if name.endswith(".safetensors") else path
            if not target.exists():
                copy_tree(self.hf_vitmatte(), target)
        elif "vitmatte" in low and name.endswith(".pdparams"):
            copy_tree(self.converted(self.hf_vitmatte() / "model.safetensors", ".pdparams"), path)
            sidecar = self.converted(self.hf_vitmatte() / "model.safetensors", ".pdparams").with_suffix(".yaml")
            if sidecar.exists():
                copy_tree(sidecar, path.with_suffix(".yaml"))
        elif re.search(r"bgmv2_(resnet50|resnet101|mobilenetv2)", low):
            backbone = re.search(r"bgmv2_(resnet50|resnet101|mobilenetv2)", low).group(1)
            suffix = ".pdparams" if name.endswith(".pdparams") else ""
            made = self.converted(self.official(backbone), suffix)
            copy_tree(made, path)
            if suffix and made.with_suffix(".yaml").exists():
                copy_tree(made.with_suffix(".yaml"), path.with_suffix(".yaml"))
        elif "bare" in name and name.endswith(".pdparams"):
            best = self.run_folder() / "best_model"
            best = best if best.exists() else self.run_folder() / "latest"
            copy_tree(best / "model.pdparams", path)
        elif low.startswith("export/") or "/export/" in low:
            copy_tree(self.export(), path)
        elif low.startswith("output/") and flag in ("--model-checkpoint", "--resume", "--model-path", None):
            copy_tree(self.run_folder(), path)
        elif name.endswith(IMAGE_EXT):
            self.write_image(path, image_kind(name, flag))
        elif name.endswith(VIDEO_EXT):
            self.write_video(path, image_kind(name, flag))
        elif name.endswith(".zip"):
            self.write_batch_zip(path)
        elif flag == "--data":
            layout = "comp1k" if "comp1k" in command_argv else "photomatte85"
            copy_tree(self.synthetic() / layout, path)
        elif flag in ("--gt-dir", "--trimap-dir") and path.name in ("alpha_copy", "trimaps"):
            if not path.parent.exists():
                copy_tree(self.synthetic() / "comp1k", path.parent)
        elif flag in ("--gt-dir", "--trimap-dir"):
            self.write_folder(path, image_kind(name, flag))
        elif flag == "--pred-dir":
            gt = command_argv[command_argv.index("--gt-dir") + 1] if "--gt-dir" in command_argv else None
            if gt:
                self.materialise(workdir, gt, "--gt-dir", command_argv)
            if gt and (workdir / gt).is_dir():
                shutil.copytree(workdir / gt, path)
            else:
                self.write_folder(path, "alpha")
        elif flag in ("--src", "--bgr", "--mask", "--trimap", "--backgrounds", "--images-src", "--images-bgr"):
            self.write_folder(path, image_kind(name, flag))
        elif flag == "--batch-root":
            path.mkdir(parents=True, exist_ok=True)
        else:
            return False
        return True

    def write_batch_zip(self, path: Path):
        tmp = path.parent / f".{path.name}.d"
        self.write_folder(tmp / "src", "photo")
        self.write_folder(tmp / "bgr", "plate")
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as archive:
            for file in sorted(tmp.rglob("*.png")):
                archive.write(file, file.relative_to(tmp).as_posix())
        shutil.rmtree(tmp)

    def write_batch_folder(self, path: Path):
        self.write_folder(path / "src", "photo")
        self.write_folder(path / "bgr", "plate")


# ------------------------------------------------------------------------------------------------ running
@dataclass
class Outcome:
    command: Command
    kind: str
    argv: list
    ok: bool
    reason: str = ""
    seconds: float = 0.0
    output: str = field(default="", repr=False)

    def line(self) -> str:
        return f"{self.command.where}: [{self.kind}] {self.command.text}\n    → {self.reason}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(home: Path, clone: Path, venv_cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "BGM", "VIDEOMATTE", "BACKGROUNDS",
                                                                       "PHOTOMATTE", "VITMATTE", "BGMATTING_AUTH"))}
    env.update(HOME=str(home), PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}", PYTHONPATH=str(clone),
               PYTHONUNBUFFERED="1", BGMATTING_VENV_CACHE=str(venv_cache))
    return env


def to_process(argv: list) -> list:
    """``argv`` as run here: ``bgmatting`` → ``python -m bgmatting`` unless installed; python → the venv's."""
    if argv and argv[0] == "bgmatting" and not (VENV_BIN / "bgmatting").exists():
        return [PYTHON, "-m", "bgmatting", *argv[1:]]
    if argv and argv[0] in ("python", "python3"):
        return [PYTHON, *argv[1:]]
    return argv


def output_paths(argv: list) -> list:
    out = []
    for i, word in enumerate(argv[:-1]):
        if word in OUTPUT_FLAGS and word != "--storage-dir":
            out.append(argv[i + 1])
    return out


def missing_output_types(workdir: Path, argv: list) -> list:
    """``--output-types a b`` with ``--output-dir D``: the types with no file under D named after them
    (``D/pha/x.png``, ``D/pha.mp4``)."""
    if "--output-types" not in argv or "--output-dir" not in argv:
        return []
    out = workdir / argv[argv.index("--output-dir") + 1]
    types = [w for w in options(argv) if w[0] == "--output-types"][-1][1]
    names = {part for f in out.rglob("*") if f.is_file() for part in (*f.relative_to(out).parts[:-1], f.stem)}
    return [f"{out.name}/{t}" for t in types if t not in names]


def one_error_line(text: str) -> list:
    return [line for line in text.splitlines() if line.startswith("error:")]


class Runner:
    """Runs the commands of the documents in scratch folders under ``base``."""

    def __init__(self, base: Path, timeout: float = 600):
        self.base = base
        self.clone = base / "clone"
        self.home = base / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        make_clone(self.clone)
        self.env = base_env(self.home, self.clone, self.venv_cache(base / "venvs"))
        self.fixtures = Fixtures(base / "cache", self.clone, self.env)
        self.timeout = timeout
        self.count = 0
        self.cwd_override = {}
        self.produced = []  # (output path as written, workdir) of the commands that succeeded
        self.servers = []

    def venv_cache(self, cache: Path) -> Path:
        """A venv cache for run.sh where the clone's requirement files' hash names the repository's own venv, so
        ``./run.sh X`` never installs one (it would: 7 GB) — it finds this one complete."""
        digest = subprocess.run("cat requirements.txt requirements-nodeps.txt requirements-dev.txt | sha256sum",
                                shell=True, cwd=self.clone, capture_output=True, text=True, check=True).stdout[:16]
        cache.mkdir(parents=True, exist_ok=True)
        venv = Path(os.path.realpath(ROOT / ".venv"))
        if not (venv / ".complete").exists():
            raise RuntimeError(f"{venv} is not a complete venv (no .complete): run ./run.sh setup first")
        os.symlink(venv, cache / digest)
        return cache

    def workdir(self, tag: str) -> Path:
        """A fresh copy of the clone for one command."""
        self.count += 1
        path = self.base / f"cmd{self.count:03d}_{re.sub(r'[^A-Za-z0-9]+', '_', tag)[:40]}"
        copy_tree(self.clone, path)
        return path

    def inputs(self, workdir: Path, argv: list, extra_paths=()):
        """Make every input ``argv`` names (values of non-output flags) that does not exist yet."""
        flag = None
        for i, word in enumerate(argv):
            if word.startswith("-") and not re.match(r"^-\d", word):
                flag = word
                continue
            if i < 2:
                continue
            if flag in OUTPUT_FLAGS:
                continue
            if flag != "--pred-dir" and self.reuse(workdir, word):
                continue
            self.fixtures.materialise(workdir, word, flag, argv)
        for value in extra_paths:
            self.fixtures.materialise(workdir, value, None, argv)

    def reuse(self, workdir: Path, value: str) -> bool:
        """Copy ``value`` from the folder of an earlier command that wrote it (``--save-dir export/x`` then
        ``--model-checkpoint export/x``), as a reader following the document would have it."""
        if (workdir / value).exists() or value.startswith(("/", "~", "-")):
            return False
        wanted = value.rstrip("/")
        for output, source in reversed(self.produced):
            output = output.rstrip("/")
            if (wanted == output or wanted.startswith(output + "/")) and (source / wanted).exists():
                copy_tree(source / wanted, workdir / wanted)
                return True
        return False

    def execute(self, argv, workdir, env_extra=None):
        env = dict(self.env, **(env_extra or {}))
        argv = [os.path.expanduser(w) if not w.startswith("~") else str(self.home) + w[1:] for w in argv]
        started = time.monotonic()
        try:
            done = subprocess.run(to_process(argv), cwd=workdir, env=env, capture_output=True, text=True,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
            return done.returncode, done.stdout + done.stderr, done.stderr, time.monotonic() - started
        except subprocess.TimeoutExpired as timeout:
            out = (timeout.stdout or b"").decode(errors="replace") if isinstance(timeout.stdout, bytes) else \
                (timeout.stdout or "")
            return None, out, "", time.monotonic() - started

    # -- per class
    def run(self, command: Command, argv: list) -> Outcome:
        kind = classify(command)
        handler = getattr(self, f"do_{kind.replace('-', '_')}", None)
        if handler is None:
            return Outcome(command, kind, argv, False, f"no rule for this kind of command ({kind}): add one to "
                                                        "tests/readme_commands.py or to its ALLOWLIST")
        try:
            return handler(command, argv)
        except Exception as error:  # a fixture that could not be made: report, do not stop the others
            return Outcome(command, kind, argv, False, f"harness error: {type(error).__name__}: {error}"[:2000])

    def do_allowlisted(self, command, argv):
        return Outcome(command, "allowlisted", argv, True, ALLOWLIST.get(normalise(" ".join(command.argv)), ""))

    def do_env(self, command, argv):
        self.env.update(command.env)
        self.env.update(dict(w.split("=", 1) for w in argv[1:] if "=" in w))
        return Outcome(command, "env", argv, True, "environment for the following commands")

    def _shrunk(self, argv: list, kind: str) -> list:
        tool = tool_of(argv)
        name = tool[0] if tool else None
        if name == "launch":
            name = launched(argv, tool[1])
        if kind == "train":
            return argv + SHRINK["train"]
        if name == "eval":
            if "--pred-dir" in argv:
                return argv
            return argv + (SHRINK["eval"] if "comp1k" not in argv else ["--limit", "2"])
        if name in SHRINK and "--summarise" not in argv:
            return argv + SHRINK[name]
        return argv

    def do_run(self, command, argv, kind="run"):
        workdir = self.workdir(" ".join(argv[:3]))
        self.inputs(workdir, argv)
        if kind == "train":
            if not (workdir / "data" / "synthetic").exists():
                copy_tree(self.fixtures.synthetic(), workdir / "data" / "synthetic")
        outputs = output_paths(argv)
        preexisting = [o for o in outputs if (workdir / o).exists()]
        run_argv = self._shrunk(argv, kind)
        code, text, err, seconds = self.execute(run_argv, workdir, command.env)
        outcome = Outcome(command, kind, run_argv, False, seconds=seconds, output=text)
        if code is None:
            outcome.reason = f"timed out after {self.timeout:.0f} s"
        elif code != 0:
            outcome.reason = f"exit {code}: {tail(text)}"
        else:
            missing = [o for o in outputs if not (workdir / os.path.expanduser(o)).exists()]
            missing += missing_output_types(workdir, run_argv)
            if missing:
                outcome.reason = f"exit 0 but the output it names is missing: {', '.join(missing)}"
            elif preexisting:
                outcome.reason = f"(outputs existed before the run: {preexisting})"
                outcome.ok = True
            else:
                outcome.ok, outcome.reason = True, f"exit 0, wrote {', '.join(outputs) or 'nothing named'}"
        if outcome.ok and outputs:
            self.produced += [(o, workdir) for o in outputs]  # kept for the commands that read them
        elif outcome.ok:
            shutil.rmtree(workdir, ignore_errors=True)
        return outcome

    def do_train(self, command, argv):
        return self.do_run(command, argv, kind="train")

    def do_train_real_data(self, command, argv):
        tool = tool_of(argv)
        run_argv = argv
        if tool and tool[0] == "launch":  # the launcher needs several processes/GPUs: the script alone
            run_argv = [argv[0]] + argv[tool[1]:]
        workdir = self.workdir(" ".join(run_argv[:3]))
        self.inputs(workdir, [w for w in run_argv if not w.startswith("/")])
        previous = previous_stage(run_argv)
        if previous:  # the earlier stage's best model, random weights: the command then reaches its data check
            backbone = re.search(r"backbone:\s*(resnet50|resnet101|mobilenetv2)\b",
                                 config_text(config_of(command)) or "")
            made = self.fixtures.converted(self.fixtures.official(backbone.group(1) if backbone else "resnet50"),
                                           ".pdparams")
            copy_tree(made, workdir / previous / "best_model" / "model.pdparams")
        code, text, err, seconds = self.execute(run_argv + SHRINK["train"], workdir, command.env)
        outcome = Outcome(command, "train-real-data", run_argv, False, seconds=seconds, output=text)
        errors = one_error_line(err)
        usage = [u for u in USAGE_ERRORS if u in err]
        if code != 2:
            outcome.reason = (f"expected the one-line refusal (exit 2) for a missing dataset, got exit {code}: "
                              f"{tail(text)}")
        elif usage:
            outcome.reason = f"argparse/usage error or traceback ({usage[0]!r}): {tail(err)}"
        elif len(errors) != 1:
            outcome.reason = f"expected exactly one error: line, got {len(errors)}: {tail(err)}"
        elif not (re.search(r"not found|missing|does not exist|no such|not a (folder|directory)", errors[0], re.I)
                  and re.search(r"\bdata\.|/data|dataset", errors[0])):
            outcome.reason = f"the error does not name a missing dataset: {errors[0]}"
        else:
            outcome.ok, outcome.reason = True, f"refused as expected: {errors[0][:200]}"
        shutil.rmtree(workdir, ignore_errors=True)
        return outcome

    def do_help(self, command, argv):
        tool = tool_of(argv)
        head = argv[:tool[1]]
        workdir = self.workdir("help " + " ".join(head))
        code, text, err, seconds = self.execute(head + ["--help"], workdir, command.env)
        shutil.rmtree(workdir, ignore_errors=True)
        flags = sorted({w.split("=")[0] for w in argv[tool[1]:] if w.startswith("--")})
        absent = [f for f in flags if f not in text]
        outcome = Outcome(command, "help", head + ["--help"], False, seconds=seconds)
        if code != 0:
            outcome.reason = f"--help exit {code}: {tail(text)}"
        elif absent:
            outcome.reason = f"--help does not list {', '.join(absent)}"
        else:
            outcome.ok, outcome.reason = True, f"--help lists {', '.join(flags) or 'the tool'}"
        return outcome

    def do_setup(self, command, argv):
        return self.do_run(command, argv, kind="setup")

    def do_pip(self, command, argv):
        words = argv[argv.index("install") + 1:] if "install" in argv else []
        targets = [w for w in words if not w.startswith("-") or w == "-e"]
        targets = [w for w in targets if w != "-e"]
        problems = []
        pyproject = (ROOT / "pyproject.toml").read_text() if (ROOT / "pyproject.toml").exists() else ""
        for target in targets:
            match = re.match(r"^([^\[]+)(?:\[([^\]]*)\])?$", target)
            if not match:
                problems.append(f"cannot read target {target!r}")
                continue
            where, extras = match.group(1), [e.strip() for e in (match.group(2) or "").split(",") if e.strip()]
            if where in (".", "./") or where.startswith(("/", "./", "../")):
                if not pyproject:
                    problems.append("no pyproject.toml at the repository root")
                for extra in extras:
                    if not re.search(rf"^\s*{re.escape(extra)}\s*=", pyproject, re.M):
                        problems.append(f"extra [{extra}] is not declared in pyproject.toml")
            elif where.startswith("-r"):
                pass
            else:
                return Outcome(command, "pip", argv, True, f"third-party package {where}: not checked here")
        if "-r" in words:
            req = words[words.index("-r") + 1]
            if not (ROOT / req).exists():
                problems.append(f"{req} does not exist")
        return Outcome(command, "pip", argv, not problems, "; ".join(problems) or
                       f"target is this project; extras declared (tests/test_packaging.py installs it)")

    def do_git(self, command, argv):
        if argv[1:2] == ["clone"] and len(argv) > 2 and re.match(r"^(https://|git@|ssh://)", argv[2]):
            name = argv[3] if len(argv) > 3 else Path(argv[2]).stem
            self.cwd_override[command.doc] = name
            return Outcome(command, "git", argv, True, f"clone of {argv[2]} (the scratch copy stands for {name}/)")
        return Outcome(command, "git", argv, False, "only `git clone URL [DIR]` has a rule")

    def do_cd(self, command, argv):
        target = argv[1] if len(argv) > 1 else "~"
        cloned = self.cwd_override.get(command.doc)
        if target.rstrip("/") == cloned or (self.clone / os.path.expanduser(target)).is_dir():
            return Outcome(command, "cd", argv, True, "into the clone" if target.rstrip("/") == cloned else "exists")
        return Outcome(command, "cd", argv, False, f"{target} is not a folder of the repository")

    def do_source(self, command, argv):
        target = argv[1] if len(argv) > 1 else ""
        ok = (ROOT / target).exists()
        return Outcome(command, "source", argv, ok, "exists" if ok else f"{target} does not exist in the repository")

    def do_venv(self, command, argv):
        """``python3 -m venv DIR``: really made (without pip, to be quick) in a scratch folder."""
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            target = Path(scratch) / argv[-1]
            done = subprocess.run([argv[0], "-m", "venv", "--without-pip", str(target)], capture_output=True,
                                  text=True)
            ok = done.returncode == 0 and (target / "bin" / "python").exists()
        return Outcome(command, "venv", argv, ok, "a virtualenv is made" if ok else done.stderr.strip()[-300:])

    def do_pytest(self, command, argv):
        paths = [w.split("::")[0] for w in argv[1:] if w.startswith("tests")]
        missing = [p for p in paths if not (ROOT / p).exists()]
        return Outcome(command, "pytest", argv, not missing, f"missing: {missing}" if missing else
                       f"the test files exist ({', '.join(paths) or 'the suite'}); the suite itself runs in CI")

    def do_unknown(self, command, argv):
        return Outcome(command, "unknown", argv, False, "no rule for this program: add one to "
                                                         "tests/readme_commands.py or to its ALLOWLIST")

    # -- the web app
    def do_serve(self, command, argv):
        server = Server(self, command, argv)
        try:
            server.start()
        except RuntimeError as error:
            server.stop()
            return Outcome(command, "serve", argv, False, str(error))
        self.servers.append(server)
        return Outcome(command, "serve", server.argv, True, f"/healthz answered on port {server.port}",
                       seconds=server.seconds)

    def api_server(self):
        if not self.servers:
            synthetic = Command(ROOT / "README.md", 0, "(default server)", {},
                                ["python", "tools/serve.py", "--model-type", "mattingbase", "--model-backbone",
                                 "mobilenetv2", "--allow-random-weights"], 0)
            server = Server(self, synthetic, synthetic.argv)
            server.start()
            self.servers.append(server)
        return self.servers[0]

    def do_curl(self, command, argv):
        server = self.api_server()
        return server.curl(command, argv)

    def close(self):
        for server in self.servers:
            server.stop()
        self.servers = []


class Server:
    """A README serve command running in the background on a free port."""

    def __init__(self, runner: Runner, command: Command, argv: list):
        self.runner, self.command = runner, command
        self.port = free_port()
        self.argv = list(argv) + ["--port", str(self.port)]
        self.workdir = runner.workdir("serve")
        self.ids = {}
        self.process = None
        self.seconds = 0.0

    def start(self, timeout: float = 180):
        import httpx

        self.runner.inputs(self.workdir, self.argv)
        env = dict(self.runner.env, **self.command.env)
        argv = [str(self.runner.home) + w[1:] if w.startswith("~") else w for w in self.argv]
        self.log = self.workdir / "server.log"
        started = time.monotonic()
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(to_process(argv), cwd=self.workdir, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: {tail(self.log.read_text())}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    self.seconds = time.monotonic() - started
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"/healthz did not answer within {timeout:.0f} s: {tail(self.log.read_text())}")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: run.sh and the server (exec) only
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def batch_root(self) -> Optional[Path]:
        if "--batch-root" in self.argv:
            value = self.argv[self.argv.index("--batch-root") + 1]
            return Path(str(self.runner.home) + value[1:]) if value.startswith("~") else self.workdir / value
        return None

    def wait_job(self, job_id: str, timeout: float = 120):
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = httpx.get(f"http://127.0.0.1:{self.port}/api/jobs/{job_id}", timeout=10).json()
            if state.get("status") not in ("queued", "running", "pending"):
                return state
            time.sleep(0.5)
        return None

    def curl(self, command: Command, argv: list) -> Outcome:
        words = []
        for word in argv[1:]:
            word = re.sub(r"(127\.0\.0\.1|localhost):8000", f"127.0.0.1:{self.port}", word)
            for segment, key in (("results/", "result"), ("jobs/", "job")):
                if f"{segment}<" in word:
                    word = re.sub(rf"{segment}<[^>]*>", segment + self.ids.get(key, "MISSING-ID"), word)
            words.append(word)
        job = re.search(r"/api/jobs/([0-9a-zA-Z_-]+)/", " ".join(words))
        if job:
            self.wait_job(job.group(1))
        # inputs: -F name=@file, and folder=NAME under the batch root
        for i, word in enumerate(words):
            if i and words[i - 1] == "-F":
                name, _, value = word.partition("=")
                if value.startswith("@"):
                    self.runner.fixtures.materialise(self.workdir, value[1:], None, words)
                elif name == "folder" and self.batch_root() is not None:
                    target = self.batch_root() / value
                    if not target.exists():
                        self.runner.fixtures.write_batch_folder(target)
        headers = self.workdir / "headers.txt"
        run_argv = ["curl", "-sS", "--fail-with-body", "-D", str(headers), *words]
        outputs = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-o"]
        started = time.monotonic()
        done = subprocess.run(run_argv, cwd=self.workdir, env=self.runner.env, capture_output=True, text=True,
                              timeout=120)
        outcome = Outcome(command, "curl", run_argv, False, seconds=time.monotonic() - started,
                          output=done.stdout + done.stderr)
        head = headers.read_text(errors="replace") if headers.exists() else ""
        status = re.findall(r"^HTTP/\S+ (\d+)", head, re.M)
        result_id = re.search(r"^x-result-id:\s*(\S+)", head, re.M | re.I)
        if result_id:
            self.ids["result"] = result_id.group(1)
        try:
            body = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
        except ValueError:
            body = {}
        if isinstance(body, dict) and body.get("job_id"):
            self.ids["job"] = body["job_id"]
        if done.returncode != 0:
            outcome.reason = f"curl exit {done.returncode}, HTTP {status[-1] if status else '?'}: " \
                             f"{tail(done.stdout + done.stderr)}"
        elif any(not (self.workdir / o).exists() for o in outputs):
            outcome.reason = f"the -o file is missing: {outputs}"
        else:
            outcome.ok, outcome.reason = True, f"HTTP {status[-1] if status else '?'}"
        return outcome


def tail(text: str, lines: int = 4) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[:800]


def run_all(base: Path, commands: Optional[list] = None) -> tuple:
    """Run every command of the documents; returns (outcomes, runner) with servers stopped."""
    commands = all_commands() if commands is None else commands
    expanded = expand(commands)
    runner = Runner(base)
    outcomes = []
    try:
        order = sorted(commands, key=lambda c: classify(c) == "curl")  # servers first, their curl lines last
        seen = {}
        for command in order:
            argv = expanded[id(command)]
            key = (tuple(argv), tuple(sorted(command.env.items())))
            if key in seen and classify(command) not in ("curl", "cd", "git", "env"):
                first = seen[key]
                outcomes.append(Outcome(command, first.kind, argv, first.ok,
                                        f"same command as {first.command.where}: {first.reason}"))
                continue
            seen[key] = runner.run(command, argv)
            outcomes.append(seen[key])
    finally:
        runner.close()
    outcomes.sort(key=lambda o: (str(o.command.doc), o.command.line))
    return outcomes, runner

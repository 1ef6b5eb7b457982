"""The installable package: `pip install .` into a fresh venv (offline, no build isolation), the `bgmatting` command
and its subcommands, one real prediction from outside the clone, the metadata read from the requirement files, and
./run.sh passing every tool through with `exec`.

The fresh venv reuses the project venv's packages through a .pth file (no copies, no network); the package itself is
installed with `--no-deps`, since the dependencies are already there (their list is checked against the wheel's
metadata separately), and from a copy of the sources, so the build leaves nothing in the working tree.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from bgmatting.data.synthetic import make_clean_plate_pairs
from bgmatting.models import MattingBase
from tests.conftest import save_random_model

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "requirements.txt", "requirements-dev.txt", "requirements-nodeps.txt",
           "bgmatting", "tools", "stages", "configs", "predict.py", "eval.py", "inference_images.py",
           "inference_video.py", "inference_webcam.py"]


def requirement_lines(path: Path) -> list:
    """The requirement specifiers of a requirements file (comments and blank lines dropped)."""
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


def copy_sources(source: Path):
    """The files a clone has that the package needs, copied to ``source``."""
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (ROOT / name).exists():
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)


def fresh_venv(env_root: Path) -> Path:
    """A venv without pip that sees the project venv's packages through a .pth file; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_root)], check=True)
    python = env_root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "_project_venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


def pip_install(python: Path, *args, cwd):
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-build-isolation",
                              "--no-deps", "--quiet", *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert install.returncode == 0, install.stdout + install.stderr


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv with bgmatting installed by `pip install .` (from a copy of the sources); returns its root."""
    work = tmp_path_factory.mktemp("install")
    copy_sources(work / "src")
    pip_install(fresh_venv(work / "venv"), work / "src", cwd=work)
    return work / "venv"


def run_in(venv, *args, cwd):
    """Run a command of the fresh venv (its bin/ first on PATH) in ``cwd``; the clone is nowhere on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BGMATTING_TOOLS_ROOT")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env)


def test_console_script_lists_and_runs_the_subcommands(venv, tmp_path):
    listing = run_in(venv, venv / "bin" / "bgmatting", "--help", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    for command in ("predict", "eval", "train", "convert", "export", "serve", "benchmark", "demo", "webcam"):
        assert f"\n  {command} " in listing.stdout, command
    for command in ("predict", "convert", "eval", "webcam", "inference-images"):
        shown = run_in(venv, venv / "bin" / "bgmatting", command, "--help", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"usage: bgmatting {command}"), shown.stdout[:200]
    unknown = run_in(venv, venv / "bin" / "bgmatting", "matte", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown command 'matte'" in unknown.stderr


def test_installed_package_and_tools_come_from_the_venv(venv, tmp_path):
    where = run_in(venv, venv / "bin" / "python", "-c",
                   "import bgmatting, bgmatting.tools_entry as t; print(bgmatting.__file__); print(t.tools_root());"
                   "print(bgmatting.__version__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    package, tools, version = where.stdout.split()
    assert Path(package).is_relative_to(venv) and Path(tools) == venv / "share" / "bgmatting"
    assert (Path(tools) / "configs" / "bgmv2_tiny.yaml").is_file()  # the demo's configs travel with the tools
    assert (Path(package).parent / "serve" / "static" / "index.html").is_file()
    metadata = run_in(venv, venv / "bin" / "python", "-c",
                      "import importlib.metadata as m; print(m.version('bgmatting'))", cwd=tmp_path)
    assert metadata.stdout.strip() == version


def test_one_real_prediction_with_the_installed_command(venv, tmp_path, tmp_path_factory):
    checkpoint = save_random_model(tmp_path_factory, MattingBase)
    make_clean_plate_pairs(tmp_path / "pairs", 1, size=(40, 52), seed=0)
    result = run_in(venv, "bgmatting", "predict", "--model-type", "mattingbase", "--model-backbone", "mobilenetv2",
                    "--model-checkpoint", checkpoint, "--src", "pairs/src/0000.png", "--bgr", "pairs/bgr/0000.png",
                    "--output-dir", "out", "--output-types", "com", "pha", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "com" / "0000.png").is_file() and (tmp_path / "out" / "pha" / "0000.png").is_file()
    assert "wrote com, pha for 1 frame(s)" in result.stdout


def test_metadata_follows_the_requirement_files(venv, tmp_path):
    script = ("import importlib.metadata as m, json; print(json.dumps(m.requires('bgmatting')));"
              "print(json.dumps(m.metadata('bgmatting').get_all('Provides-Extra')))")
    result = run_in(venv, venv / "bin" / "python", "-c", script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import json

    requires, extras = map(json.loads, result.stdout.splitlines())
    from packaging.requirements import Requirement

    normalise = lambda spec: str(Requirement(spec)).lower()  # noqa: E731  (specifiers in one order)
    core = sorted(normalise(r) for r in requires if "extra ==" not in r)
    assert core == sorted(normalise(r) for r in requirement_lines(ROOT / "requirements.txt"))
    assert not any(r.lower().startswith("paddleseg") for r in requires)  # a --no-deps install (see pyproject.toml)
    assert set(extras) == {"dev", "serve", "onnx"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(project["optional-dependencies"]["dev"]) == sorted(requirement_lines(ROOT / "requirements-dev.txt"))


def test_cli_dispatch_in_process(capsys):
    from bgmatting.cli import main
    from bgmatting.tools_entry import TOOLS, load_tool

    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2 and "commands:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("bgmatting ")
    for name in ("predict", "eval", "convert", "export", "train", "webcam"):
        assert callable(load_tool(name)), name
    assert {"predict", "eval", "train", "convert", "export", "serve", "benchmark", "demo"} <= set(TOOLS)


def test_run_sh_passes_tools_through_with_exec(tmp_path):
    """./run.sh TOOL … runs `python -m bgmatting TOOL …` from the caller's folder, as the same process (exec).

    Run on a copy of run.sh with a stand-in venv (a `python` that reports its PID, folder and arguments), so the
    test neither installs anything nor touches the clone's .venv link."""
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy2(ROOT / "run.sh", clone / "run.sh")
    for name in ("requirements.txt", "requirements-nodeps.txt", "requirements-dev.txt"):
        shutil.copy2(ROOT / name, clone / name)
    digest = subprocess.run("cat requirements.txt requirements-nodeps.txt requirements-dev.txt | sha256sum | "
                            "cut -c1-16", shell=True, cwd=clone, capture_output=True, text=True).stdout.strip()
    cache = tmp_path / "cache"
    fake = cache / digest
    (fake / "bin").mkdir(parents=True)
    (fake / ".complete").touch()
    (fake / "bin" / "python").write_text('#!/bin/sh\necho "$$|$PWD|$PYTHONPATH|$*"\n')
    (fake / "bin" / "python").chmod(0o755)
    caller = tmp_path / "elsewhere"
    caller.mkdir()
    env = dict(os.environ, BGMATTING_VENV_CACHE=str(cache))
    for command in ("predict", "convert", "serve", "eval", "demo"):
        process = subprocess.Popen([str(clone / "run.sh"), command, "--x", "a b"], cwd=caller, env=env,
                                   stdout=subprocess.PIPE, text=True)
        output, _ = process.communicate(timeout=30)
        pid, folder, pythonpath, arguments = output.strip().split("|")
        assert int(pid) == process.pid, command  # exec: the tool is the process run.sh started
        assert folder == str(caller) and pythonpath.split(os.pathsep)[0] == str(clone)
        assert arguments == f"-m bgmatting {command} --x a b"


def test_editable_install_runs_the_clone(tmp_path):
    """`pip install -e .`: the package and the tools are the clone's own files."""
    copy_sources(tmp_path / "clone")
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, "-e", tmp_path / "clone", cwd=tmp_path)
    where = run_in(tmp_path / "venv", python, "-c", "import bgmatting, bgmatting.tools_entry as t; "
                   "print(bgmatting.__file__); print(t.tools_root())", cwd=tmp_path)
    assert where.stdout.split() == [str(tmp_path / "clone" / "bgmatting" / "__init__.py"), str(tmp_path / "clone")]
    shown = run_in(tmp_path / "venv", tmp_path / "venv" / "bin" / "bgmatting", "inference-video", "--help",
                   cwd=tmp_path)
    assert shown.returncode == 0 and "--video-target-bgr" in shown.stdout

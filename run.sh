#!/usr/bin/env bash
# bgmatting task runner.
#   ./run.sh setup            make/refresh the virtualenv (cached outside the clone, keyed by the requirement files)
#   ./run.sh test [pytest args]
#   ./run.sh stage1 | stage2 | stage3 | vitmatte          the training stages (see README.md)
#   ./run.sh reference [--smoke] [--study]  the reference run on synthetic data (~30 min on 2 CPU cores) → output/reference/
#   ./run.sh TOOL [args]   any `bgmatting` subcommand in the venv, e.g. ./run.sh predict --help, ./run.sh convert …:
#                          predict eval train convert export serve benchmark demo make-synthetic webcam
#                          inference-images inference-video (the process becomes the tool: `exec`, so its PID is
#                          the server's for `./run.sh serve`)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CALLER="$PWD"   # tools run from here, so relative paths in their arguments mean what the user typed
cd "$ROOT"
PYTHON_BIN="${PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

req_hash() { cat requirements.txt requirements-nodeps.txt requirements-dev.txt | sha256sum | cut -c1-16; }
VENV_CACHE="${BGMATTING_VENV_CACHE:-$HOME/.cache/bgmatting/venvs}"
VENV="$VENV_CACHE/$(req_hash)"

setup() {
  mkdir -p "$VENV_CACHE"
  exec 9>"$VENV.lock"; flock 9   # one installer per venv, even when two runs start at once
  if [ -f "$VENV/.complete" ]; then
    echo "virtualenv up to date: $VENV"
  else
    echo "creating virtualenv $VENV (first run downloads ~7 GB: Paddle, and torch for the parity tests)"
    rm -rf "$VENV"
    local start=$SECONDS
    "$PYTHON_BIN" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -r requirements.txt
    "$VENV/bin/pip" install -q --no-deps -r requirements-nodeps.txt
    "$VENV/bin/pip" install -q -r requirements-dev.txt
    "$VENV/bin/python" -c "import paddle, paddleseg, cv2, numpy, torch, torchvision, BackgroundMattingV2, transformers, onnxruntime, paddle2onnx, fastapi, fastapi_offline, PIL, httpx, selenium" \
      2>/dev/null || { echo "setup: the installed packages do not import together" >&2; exit 1; }
    touch "$VENV/.complete"
    echo "setup took $((SECONDS - start)) s"
  fi
  flock -u 9
  ln -sfn "$VENV" "$ROOT/.venv"
}

ensure() { [ -f "$VENV/.complete" ] || setup; ln -sfn "$VENV" "$ROOT/.venv"; }
# Headless Chromium + chromedriver for the web UI test (Debian packages; installed once, as root or via sudo).
ensure_browser() {
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && return 0
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing chromium + chromium-driver for the web UI test"
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}
PY() { "$VENV/bin/python" "$@"; }

cmd="${1:-help}"; shift || true
case "$cmd" in
  setup) setup ;;
  test) ensure; ensure_browser || echo "run.sh: could not install chromium; tests/test_web_ui.py will fail" >&2
        PY -m pytest -q "$@" ;;
  stage1|stage2|stage3) ensure; PY "stages/$cmd.py" "$@" ;;
  vitmatte) ensure; PY stages/vitmatte.py "$@" ;;
  reference) ensure; cd "$CALLER"; PY "$ROOT/stages/reference.py" "$@" ;;
  predict|eval|train|convert|export|serve|benchmark|demo|make-synthetic|webcam|inference-images|inference-video)
        ensure; cd "$CALLER"; PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$VENV/bin/python" -m bgmatting "$cmd" "$@" ;;
  help|-h|--help) sed -n '2,10p' "$0" ;;
  *) echo "run.sh: unknown command '$cmd' (try ./run.sh help)" >&2; exit 2 ;;
esac

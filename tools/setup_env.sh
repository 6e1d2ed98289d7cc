#!/usr/bin/env bash
# Create or reuse the project virtual environment and install the pinned stack.
#
# Idempotent: every step checks first and skips what is already done. The mmcv wheel (built from
# source, ~10 min on 2 cores) is cached outside the repository in $COMA_WHEEL_CACHE so that later
# set-ups, fresh clones included, take seconds.
#
# Env: VENV (default .venv), PYTHON (default python3), COMA_WHEEL_CACHE (default ~/.cache/coma/wheels).
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
CACHE=${COMA_WHEEL_CACHE:-$HOME/.cache/coma/wheels}
MMCV_VERSION=2.1.0
STAMP="$VENV/.coma-setup-done"
here=$(cd "$(dirname "$0")/.." && pwd)

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ -f "$STAMP" ] && [ "$STAMP" -nt "$here/requirements.txt" ] && [ "$STAMP" -nt "$here/tools/setup_env.sh" ]; then
  log "environment $VENV is up to date"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$(cd "$VENV" && pwd)/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)
# This machine's pip config lists local index folders that may be absent; pip warns per package.
export PYTHONWARNINGS=ignore

log "build tools (setuptools<82: mmcv's setup.py imports pkg_resources)"
"${PIP[@]}" "setuptools<82" wheel ninja psutil

if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
  log "torch and torchvision"
  # torch asks for setuptools>=77.0.3; keep it below 82 in the same resolution.
  "${PIP[@]}" torch==2.14.1 torchvision==0.29.1 "setuptools<82"
fi

if ! (cd / && "$PY" -c "import mmcv, sys; from mmcv.ops import RoIAlign, nms; sys.exit(mmcv.__version__ != '$MMCV_VERSION')") 2>/dev/null; then
  mkdir -p "$CACHE"
  torch_tag=$("$PY" -c "import torch; print(torch.__version__.replace('+', '_'))")
  # CUDA ops need a CUDA toolkit and a visible GPU (a toolkit alone, as on our CPU CI machines, would
  # add ~40 min of nvcc for ops that cannot run). MMCV_WITH_CUDA=1/0 forces the choice.
  cuda_tag=$("$PY" -c "
import os, torch, torch.utils.cpp_extension as c
want = os.environ.get('MMCV_WITH_CUDA')
use = (want == '1') if want in ('0', '1') else bool(c.CUDA_HOME and torch.cuda.is_available())
print('cuda' if use else 'cpu')")
  wheel_dir="$CACHE/mmcv-$MMCV_VERSION-torch$torch_tag-$cuda_tag"
  if ! ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
    log "building mmcv $MMCV_VERSION with compiled ops ($cuda_tag); about 10 minutes on 2 cores, once"
    src=$(mktemp -d)
    "$PY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: -d "$src" "mmcv==$MMCV_VERSION"
    tar -xzf "$src"/mmcv-*.tar.gz -C "$src"
    srcdir=$(ls -d "$src"/mmcv-$MMCV_VERSION)
    # torch 2.14's headers need C++20; mmcv 2.1.0 hard-codes C++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$srcdir/setup.py"
    grep -q -- '-std=c++20' "$srcdir/setup.py"
    force_cuda=0
    [ "$cuda_tag" = cuda ] && force_cuda=1
    mkdir -p "$wheel_dir.tmp"
    (cd "$srcdir" && MMCV_WITH_OPS=1 FORCE_CUDA=$force_cuda MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$wheel_dir.tmp" .)
    rm -rf "$wheel_dir" && mv "$wheel_dir.tmp" "$wheel_dir"
    rm -rf "$src"
  fi
  log "installing cached mmcv wheel from $wheel_dir"
  "${PIP[@]}" --no-deps "$wheel_dir"/mmcv-*.whl
fi

log "the rest of the pinned stack"
"${PIP[@]}" -r "$here/requirements.txt"
"${PIP[@]}" --no-deps -e "$here"
(cd / && "$PY" -c "import pkg_resources; from mmcv.ops import RoIAlign, nms; import mmdet, mmseg, mmengine, timm, coma")
touch "$STAMP"
log "done: $VENV"

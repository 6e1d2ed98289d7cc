#!/usr/bin/env bash
# Create or reuse the project virtual environment and install the pinned stack.
#
# Idempotent: every step checks first and skips what is already done. The mmcv wheel (built from
# source, ~10 min on 2 cores) is cached outside the repository in $COMA_WHEEL_CACHE so that later
# set-ups, fresh clones included, take seconds.
#
# mmcv's CUDA ops are built when a GPU is visible, or with MMCV_WITH_CUDA=1 (a cluster's login node has
# the CUDA toolkit but no GPU: set it there); MMCV_WITH_CUDA=0 builds the CPU ops only. The stamp file
# records which ops the installed mmcv has (mmcv_ops=cpu|cuda), and a set-up that wants CUDA ops (a
# visible GPU, or MMCV_WITH_CUDA=1) over an environment with CPU ops installs them.
#
# Env: VENV (default .venv), PYTHON (default python3), COMA_WHEEL_CACHE (default ~/.cache/coma/wheels),
# MMCV_WITH_CUDA (1/0). `--plan` prints what a set-up would do and changes nothing.
set -euo pipefail
PLAN=0
[ "${1:-}" = --plan ] && PLAN=1

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
CACHE=${COMA_WHEEL_CACHE:-$HOME/.cache/coma/wheels}
MMCV_VERSION=2.1.0
STAMP="$VENV/.coma-setup-done"
here=$(cd "$(dirname "$0")/.." && pwd)

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

gpu_visible() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }
if [ -f "$STAMP" ] && [ "$STAMP" -nt "$here/requirements.txt" ] && [ "$STAMP" -nt "$here/tools/setup_env.sh" ] \
    && [ "$STAMP" -nt "$here/pyproject.toml" ]; then
  ops=$(sed -n 's/^mmcv_ops=//p' "$STAMP")
  if [ "$ops" != cuda ] && { [ "${MMCV_WITH_CUDA:-}" = 1 ] || { [ "${MMCV_WITH_CUDA:-}" != 0 ] && gpu_visible; }; }; then
    log "environment $VENV has mmcv's ${ops:-unrecorded} ops; CUDA ops wanted (a visible GPU or MMCV_WITH_CUDA=1): installing them"
  else
    log "environment $VENV is up to date (mmcv_ops=${ops:-unrecorded})"
    exit 0
  fi
fi
if [ "$PLAN" = 1 ]; then
  log "plan: set up $VENV"
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

# CUDA ops with a visible GPU or MMCV_WITH_CUDA=1 (a toolkit alone, as on our CPU CI machines, would add
# ~40 min of nvcc for ops that cannot run there); MMCV_WITH_CUDA=0 forces the CPU ops.
cuda_tag=$("$PY" -c "
import os, torch, torch.utils.cpp_extension as c
want = os.environ.get('MMCV_WITH_CUDA')
nvcc = bool(c.CUDA_HOME and os.path.exists(os.path.join(c.CUDA_HOME, 'bin', 'nvcc')))
print('cuda' if (want == '1' if want in ('0', '1') else torch.cuda.is_available() and nvcc) else 'cpu')" 2>/dev/null)
if [ "$cuda_tag" = cpu ] && [ -z "${MMCV_WITH_CUDA:-}" ] && command -v nvcc >/dev/null 2>&1; then
  log "a CUDA toolkit is here but no GPU is visible: mmcv's CPU ops only. For GPU nodes (a cluster's login" \
      "node), run MMCV_WITH_CUDA=1 make setup (about 40 min of nvcc on 2 cores, once: the wheel is cached)"
fi
if ! (cd / && "$PY" -c "
import mmcv, sys
from mmcv.ops import RoIAlign, nms, get_compiling_cuda_version
sys.exit(mmcv.__version__ != '$MMCV_VERSION' or ('$cuda_tag' == 'cuda' and get_compiling_cuda_version() == 'not available'))") 2>/dev/null; then
  mkdir -p "$CACHE"
  torch_tag=$("$PY" -c "import torch; print(torch.__version__.replace('+', '_'))")
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
(cd / && "$PY" -c "
import mmcv, torch
from mmcv.ops import get_compiling_cuda_version as cuda
print(f'mmcv={mmcv.__version__}')
print(f'torch={torch.__version__}')
print('mmcv_ops=' + ('cpu' if cuda() == 'not available' else 'cuda'))
print(f'mmcv_cuda={cuda()}')") > "$STAMP"
log "done: $VENV ($(grep mmcv_ops "$STAMP"))"

#!/usr/bin/env bash
# Fetches, here (PyPI reachable), the wheels that the GPU scripts install on a lent device machine,
# which has torch, timm, triton, numpy, scipy, matplotlib, opencv, rich, pandas and scikit-image but
# no network and no OpenMMLab package. Run once from the repository root before the device call:
#
#   bash tools/gpu_wheels.sh              # .whl/: what tools/gpu_speed.sh needs (1.5 MiB)
#   bash tools/gpu_wheels.sh --downstream # also mmdet, mmseg, their small deps and mmcv's source,
#                                         # for tools/gpu_check.sh (about 5 MiB more)
#
# then name `.whl` in the device call's `carry` (it is git-ignored). The versions are this project's
# where requirements.txt pins them; the wheels are for the device image's CPython 3.12 on x86-64.
set -eu
dest=.whl
mkdir -p "$dest"
fetch() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$dest" "$@"
}
fetch mmengine==0.10.7 mmcv-lite==2.1.0 addict==2.4.0 yapf==0.43.0 termcolor==3.3.0 platformdirs==4.14.9
if [ "${1:-}" = "--downstream" ]; then
  # gpu_check.sh installs everything in .whl/ except mmcv-lite, whose place the freshly built mmcv takes
  fetch mmdet==3.3.0 mmsegmentation==1.2.2 pycocotools shapely terminaltables prettytable wcwidth ftfy
  # the source: pip reads its metadata by running its setup.py, which needs setuptools<82 (as in .venv)
  py=${PY:-.venv/bin/python}
  [ -x "$py" ] || py=python3
  "$py" -m pip download -q --no-deps --no-build-isolation --no-binary :all: -d "$dest" mmcv==2.1.0
fi
ls -l "$dest"

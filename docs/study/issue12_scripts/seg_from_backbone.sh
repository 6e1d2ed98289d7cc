#!/bin/bash
# issue 12, eleventh session: the demo's UperNet stage (seed S, one thread) from latent_long.sh's backbone,
# run by coma.demo.downstream exactly as `tools/demo.py` runs its seg stage.
# usage: seg_from_backbone.sh NAME S   -> work_dirs/latent_long/NAME_sS/demo/seedS/seg-coma_metrics.json
cd "$(dirname "$0")/../../.."  # the repository root
N=$1; S=$2; W=work_dirs/latent_long/${N}_s$S/demo
mkdir -p $W/seed$S && ln -sf "$(pwd)/work_dirs/latent_long/${N}_s$S/backbone.pth" $W/seed$S/dyvit_coma_backbone.pth
export OMP_NUM_THREADS=1
${PY:-.venv/bin/python} -c "
import argparse, os
from coma.demo import downstream
downstream(argparse.Namespace(data_root='data/demo', seeds=[$S], root=os.getcwd(), recipe='demo', quick=False, gpus=0),
           '$W', 'seg', 'coma', $S)" > $W/seg.log 2>&1

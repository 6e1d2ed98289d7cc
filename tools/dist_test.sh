#!/usr/bin/env bash
# Distributed testing with torchrun, mmdet's arguments and variables:
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Several nodes: NNODES, NODE_RANK, MASTER_ADDR and PORT, as for dist_train.sh.
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
exec "${PYTHON:-python}" -m torch.distributed.run --nnodes="$NNODES" --node-rank="$NODE_RANK" --master-addr="$MASTER_ADDR" \
  --master-port="$PORT" --nproc-per-node="$GPUS" "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" \
  --launcher pytorch "${@:4}"

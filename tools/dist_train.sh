#!/usr/bin/env bash
# Distributed training with torchrun, mmdet's arguments and variables:
#   bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# Several nodes: NNODES, NODE_RANK (0 .. NNODES-1), MASTER_ADDR (node 0's address) and PORT, the same
# command on every node.
set -euo pipefail
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
exec "${PYTHON:-python}" -m torch.distributed.run --nnodes="$NNODES" --node-rank="$NODE_RANK" --master-addr="$MASTER_ADDR" \
  --master-port="$PORT" --nproc-per-node="$GPUS" "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "${@:3}"

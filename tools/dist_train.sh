#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG NPROC [train.py args...]
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
PORT=${PORT:-29500}
exec torchrun --nnodes="${NNODES:-1}" --node-rank="${NODE_RANK:-0}" --master-addr="${MASTER_ADDR:-127.0.0.1}" \
  --master-port="$PORT" --nproc-per-node="$NPROC" "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "$@"

#!/usr/bin/env bash
# Train with N processes on this node (N GPUs, or N CPU processes with gloo when there is no GPU).
#   bash tools/dist_train.sh CONFIG N [train.py flags]
# Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host0 PORT=29500 bash tools/dist_train.sh CONFIG N
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 CONFIG NUM_PROCESSES [train.py flags]" >&2; exit 2; fi
CONFIG=$1
NPROC=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Interpreter: $MIM_PYTHON, else the project environment made by `make setup`, else `python` on PATH.
if [ -z "${MIM_PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then MIM_PYTHON="$ROOT/.venv/bin/python"; else MIM_PYTHON=python; fi
fi
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "$MIM_PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
  --master_port="${PORT:-29500}" --nproc_per_node="$NPROC" \
  "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"

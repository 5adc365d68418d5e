#!/usr/bin/env bash
# Test with N processes on this node (N GPUs, or N CPU processes with gloo when there is no GPU).
#   bash tools/dist_test.sh CONFIG CHECKPOINT N [test.py flags]
set -euo pipefail
if [ $# -lt 3 ]; then echo "usage: $0 CONFIG CHECKPOINT NUM_PROCESSES [test.py flags]" >&2; exit 2; fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Interpreter: $MIM_PYTHON, else the project environment made by `make setup`, else `python` on PATH.
if [ -z "${MIM_PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then MIM_PYTHON="$ROOT/.venv/bin/python"; else MIM_PYTHON=python; fi
fi
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "$MIM_PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
  --master_port="${PORT:-29500}" --nproc_per_node="$NPROC" \
  "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"

#!/usr/bin/env bash
# Train on a Slurm cluster: one task per GPU, GPUS_PER_NODE tasks per node.
#   GPUS=16 GPUS_PER_NODE=8 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py flags]
# mmengine reads SLURM_PROCID / SLURM_NTASKS / SLURM_NODELIST and sets MASTER_ADDR itself;
# PORT (default 29500) sets MASTER_PORT.
set -euo pipefail
if [ $# -lt 4 ]; then echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py flags]" >&2; exit 2; fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Interpreter: $MIM_PYTHON, else the project environment made by `make setup`, else `python` on PATH.
if [ -z "${MIM_PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then MIM_PYTHON="$ROOT/.venv/bin/python"; else MIM_PYTHON=python; fi
fi
export MASTER_PORT=${PORT:-29500}
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec srun -p "$PARTITION" --job-name="$JOB_NAME" \
  --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
  --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
  "$MIM_PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"

#!/usr/bin/env bash
# Distributed BasicSR training with the basicsr_nlattn plugin: torchrun, one process per GPU.
#
# Usage:
#   scripts/dist_train.sh NUM_GPUS OPTION_FILE [basicsr_nlattn.train flags, e.g. --auto_resume]
#
# It runs, from the current directory (experiments/ is written there, as with `basicsr train`):
#   torchrun --nproc_per_node=NUM_GPUS --nnodes=... -m basicsr_nlattn.train -opt OPTION_FILE --launcher pytorch ...
# datasets.train.batch_size_per_gpu is per process: the effective batch is NUM_GPUS x NNODES x batch_size_per_gpu.
# Without CUDA every process trains on the CPU and the processes talk through gloo.
#
# One node, 4 GPUs:
#   scripts/dist_train.sh 4 options/train_ENLCN_x4.yml
#   scripts/dist_train.sh 4 options/train_ENLCN_x4.yml --auto_resume      # continue after an interruption
#
# Several nodes, static master: run on every node, with NODE_RANK 0 .. NNODES-1 and the address of node 0:
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0.example MASTER_PORT=29500 scripts/dist_train.sh 4 OPTION_FILE  # node0
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=node0.example MASTER_PORT=29500 scripts/dist_train.sh 4 OPTION_FILE  # node1
#
# Several nodes, elastic rendezvous (torchrun's c10d store; node ranks are assigned, NODE_RANK is ignored):
#   NNODES=2 RDZV_ENDPOINT=node0.example:29400 [RDZV_ID=my_run] scripts/dist_train.sh 4 OPTION_FILE  # every node
#
# SLURM (one task per node running this script, signals and requeue): docs/training.md, "SLURM".
#
# Environment:
#   NNODES (default 1), NODE_RANK (default 0), MASTER_ADDR (default 127.0.0.1), MASTER_PORT (default 29500);
#   RDZV_ENDPOINT (host:port; when set, elastic rendezvous replaces MASTER_ADDR / MASTER_PORT / NODE_RANK),
#   RDZV_ID (default basicsr_nlattn);
#   SHUTDOWN_TIMEOUT: seconds torchrun gives the processes to save after a stop signal before SIGKILL (default 60);
#   TORCHRUN: the torchrun executable (default: torchrun from PATH, e.g. the activated virtual environment's).
set -euo pipefail

usage() {
    cat >&2 <<EOF
Usage: $(basename "$0") NUM_GPUS OPTION_FILE [basicsr_nlattn.train flags, e.g. --auto_resume]
  NUM_GPUS     processes on this node (a positive integer; one per GPU)
  OPTION_FILE  BasicSR option YAML file
Environment: NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT, or RDZV_ENDPOINT (host:port) and RDZV_ID; TORCHRUN.
EOF
}

if [[ $# -ge 1 && ($1 == -h || $1 == --help) ]]; then
    usage
    exit 0
fi
if [[ $# -lt 2 ]]; then
    echo "$(basename "$0"): error: NUM_GPUS and OPTION_FILE are required" >&2
    usage
    exit 2
fi

NUM_GPUS=$1
OPTION_FILE=$2
shift 2

if ! [[ $NUM_GPUS =~ ^[0-9]+$ ]] || ((10#$NUM_GPUS < 1)); then
    echo "$(basename "$0"): error: NUM_GPUS must be a positive integer, got '$NUM_GPUS'" >&2
    usage
    exit 2
fi
if [[ ! -f $OPTION_FILE ]]; then
    echo "$(basename "$0"): error: option file '$OPTION_FILE' not found" >&2
    usage
    exit 2
fi

TORCHRUN=${TORCHRUN:-torchrun}
NNODES=${NNODES:-1}

launch=(--nproc_per_node="$((10#$NUM_GPUS))" --nnodes="$NNODES")
if [[ -n ${RDZV_ENDPOINT:-} ]]; then
    launch+=(--rdzv_backend=c10d --rdzv_endpoint="$RDZV_ENDPOINT" --rdzv_id="${RDZV_ID:-basicsr_nlattn}")
else
    launch+=(--node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}"
        --master_port="${MASTER_PORT:-29500}")
fi

# Preemption: torchrun forwards these signals to every process (SIGUSR1 too: SLURM's --signal=USR1@120), which
# finish their iteration, save a training state and exit with 75; it waits SHUTDOWN_TIMEOUT seconds for them.
launch+=(--signals_to_handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 --shutdown_timeout="${SHUTDOWN_TIMEOUT:-60}")

set -x
exec "$TORCHRUN" "${launch[@]}" -m basicsr_nlattn.train -opt "$OPTION_FILE" --launcher pytorch "$@"

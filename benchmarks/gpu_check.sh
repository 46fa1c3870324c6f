#!/usr/bin/env bash
# The GPU checks of issue 15, in one call on a machine with CUDA (no GPU was lent when they were
# written, so none of them has run on hardware yet):
#   1. one-GPU training with bf16 autocast and torch.compile (device selection, AMP, compile);
#   2. with >= 2 GPUs: DDP on NCCL, 2 processes vs 1 with the same global batch, and
#      train.sync_batch_norm (SyncBatchNorm has a GPU kernel only);
#   3. the in-memory vs streaming throughput and peak RSS on the same image folder.
# Output goes to the terminal and to benchmarks/results/gpu_check-<date>-<gpu>.txt.
#
#   PY=.venv/bin/python bash benchmarks/gpu_check.sh        (a Python whose torch has CUDA)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '_')
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
mkdir -p benchmarks/results
LOG=benchmarks/results/gpu_check-$(date -u +%Y-%m-%d)-${GPU:-unknown}.txt
TMP=$(mktemp -d)
exec > >(tee "$LOG") 2>&1
echo "date $(date -u +%FT%TZ), gpu ${GPU:-none} x ${NGPU}, torch $($PY -c 'import torch; print(torch.__version__, torch.version.cuda)')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
[ "$NGPU" -ge 1 ] || { echo "no CUDA device: nothing to check"; exit 1; }

RECIPE=examples/mnist1d_cnn.yaml
COMMON=(--set train.epochs=5 --set train.efficiency=true --quiet --no-report)
summary() { $PY -c "import json,sys; r=json.load(open(sys.argv[1])); e=r['efficiency']; \
print(sys.argv[2], 'val', round(r['val']['accuracy'],4), 'train_s', round(r['train_seconds'],2), \
'latency_ms', e.get('latency_ms'), 'throughput', e.get('throughput'))" "$1/result.json" "$2"; }

echo "== 1. one GPU: fp32, then bf16 + compile"
$PY -m tunelab train $RECIPE --out "$TMP/fp32" --set train.device=cuda "${COMMON[@]}" && summary "$TMP/fp32" fp32
$PY -m tunelab train $RECIPE --out "$TMP/bf16c" --set train.device=cuda --set train.precision=bf16 \
  --set train.compile=true "${COMMON[@]}" && summary "$TMP/bf16c" bf16+compile

if [ "$NGPU" -ge 2 ]; then
  echo "== 2. DDP on NCCL: 2 processes, the same global batch (compare with fp32 above)"
  $PY -m tunelab train $RECIPE --nproc 2 --out "$TMP/ddp" --set train.device=cuda "${COMMON[@]}" \
    && summary "$TMP/ddp" ddp2
  $PY -m tunelab train $RECIPE --nproc 2 --out "$TMP/ddp_sbn" --set train.device=cuda \
    --set train.sync_batch_norm=true "${COMMON[@]}" && summary "$TMP/ddp_sbn" ddp2+sync_bn
  $PY benchmarks/ddp.py --nproc 1 2 --epochs 5 --device cuda
else
  echo "== 2. skipped: one GPU (DDP needs >= 2)"
fi

echo "== 3. in-memory vs streaming on a 20k-image folder"
$PY benchmarks/streaming.py --images 20000 --epochs 3 --workers 4 --device cuda
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null
rm -rf "$TMP"
echo "written: $LOG"

#!/bin/sh
# Issue 13, Qwen3-235B-A22B on 8 GPUs (helper "moe"): from the device round's samples to the
# tables. Usage, from the repository root:  sh results/large-models/qwen3-235b-a22b/regenerate.sh
# Needs the device samples in results/large-models/qwen3-235b-a22b/device-r3/ (committed), the
# measured NCCL table bulletsim/data/collectives/h200__nccl-2gpu.json (issue 13 part 1) and the
# real traces in ../shared/traces (or TRACES=DIR). CPU only; ~25 min on 2 quiet cores.
set -eu
D=results/large-models/qwen3-235b-a22b
TRACES="${TRACES:-../shared/traces}"
NCCL=bulletsim/data/collectives/h200__nccl-2gpu.json
COLL=""
[ -f "$NCCL" ] && COLL="--collectives $NCCL"
# 1. per-GPU profiles (TP 8, EP 8) fitted on the H200 samples (uniform routing), checked on the
#    held-back zipf:0.6 samples, the all-reduce attached, H20 derived; installed
python -m calibrate.moe_fit "$D/device-r3" --out "$D" --install --replace $COLL
# 2. capacity under the paper's large-model criterion (mean E2E / output tokens), 8 x H20;
#    Bullet's TPOT target set to the same limit (as for the 70B rows)
for run in qwen3-235b-a22b:profile:100 qwen3-235b-a22b:profile:200 \
           qwen3-235b-a22b-ep8:profile:100 qwen3-235b-a22b-ep8:profile:200 \
           qwen3-235b-a22b:roofline:100 \
           qwen3-235b-a22b:roofline:200; do
  m=${run%%:*}; rest=${run#*:}; lat=${rest%%:*}; slo=${rest##*:}
  python -m bulletsim.norm_latency --gpu h20 --model "$m" --tp 8 --latency "$lat" \
    --slo-ms "$slo" --policy bullet --policy chunked-2048 --policy chunked-8192 \
    --trace sharegpt --traces-dir "$TRACES" -n 2000 --seeds 0,1,2 --lo 0.25 --hi 32 \
    --rel-tol 0.02 --workers 2 --set slo.tpot_ms="$slo" --out "$D/normlat-h20-$m-$lat-$slo"
done

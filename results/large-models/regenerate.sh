#!/bin/sh
# Issue 13: Llama-3.1-70B tensor-parallel results, from the device runs to the tables.
# Usage, from the repository root:  sh results/large-models/regenerate.sh
# Needs the device outputs in results/large-models/device/ (committed) and the real traces in
# ../shared/traces (or TRACES=DIR). CPU only; ~20 min on 2 shared cores.
set -eu
D=results/large-models
DEV="$D/device"
TRACES="${TRACES:-../shared/traces}"
# every file the sweeps read, before anything is replaced (never the embedded models)
PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} python -m bulletsim.workload.require "$TRACES" sharegpt || exit 2
# 1. measured NCCL table (2 H200s) + its report with the derived 4/8-GPU transfer
python -m calibrate.collectives_fit "$DEV/collectives.json" \
  --out bulletsim/data/collectives/h200__nccl-2gpu.json --report "$D"
# 2. per-GPU shard profiles: refit from the committed samples, attach the all-reduce, install
for tp in 2 4 8; do
  [ -f "$DEV/tp$tp/samples.parquet" ] || continue
  FIT="${TMPDIR:-/tmp}/large-models-fit-tp$tp"
  bulletsim calibrate-fit "$DEV/tp$tp/samples.parquet" --meta "$DEV/tp$tp/meta.json" --out "$FIT"
  cp "$FIT/report.md" "$DEV/tp$tp/fit-report.md" 2>/dev/null || true
  python -m calibrate.shard_profile "$FIT/h200__llama-3.1-70b__tp$tp.json" \
    --collectives bulletsim/data/collectives/h200__nccl-2gpu.json --install --replace
done
if [ ! -f "$DEV/tp8/samples.parquet" ]; then
  # no TP-8 sweep finished on the device: TP-8 kernels derived from the TP-4 shard's
  python -m calibrate.derive_shard --from-tp 4 --tp 8
  python -m calibrate.shard_profile bulletsim/data/profiles/h200__llama-3.1-70b__tp8.json \
    --collectives bulletsim/data/collectives/h200__nccl-2gpu.json
fi
# 3. derived 8-GPU profiles for the paper's GPUs (kernels and all-reduce both derived)
for g in a100 h100; do
  bulletsim calibrate-derive --from h200 --gpu $g --model llama-3.1-70b --tp 8
done
[ "${SIMS:-1}" = 1 ] || exit 0  # SIMS=0: profiles only
# 4. the paper's settings: ShareGPT on 8xA100 (200 ms/token) and 8xH100 (100 ms/token)
for gs in a100:200 h100:100; do
  g=${gs%%:*}; slo=${gs##*:}
  # (a) bulletsim's own capacity: >= 90% of requests within TTFT <= 3 ms/prompt token
  #     (Table 4, ShareGPT) and TPOT <= the paper's per-token limit
  bulletsim sweep --policy bullet --policy chunked-2048 --policy chunked-8192 --gpu $g \
    --model llama-3.1-70b --set tp=8 --set slo.tpot_ms=$slo --latency profile \
    --trace sharegpt --traces-dir "$TRACES" --rates 1,2,4,8 -n 1000 --seeds 0,1,2 \
    --rel-tol 0.05 --workers 2 --no-timeline -q --out "$D/sweep-$g-tp8"
  # (b) the paper's criterion: mean normalized latency (E2E / output tokens) <= the limit
  python -m bulletsim.norm_latency --gpu $g --model llama-3.1-70b --tp 8 --slo-ms $slo \
    --policy bullet --policy chunked-2048 --policy chunked-8192 --trace sharegpt \
    --traces-dir "$TRACES" -n 2000 --seeds 0,1,2 --lo 0.5 --hi 64 --rel-tol 0.05 \
    --set slo.tpot_ms=$slo --out "$D/normlat-$g-tp8"
done
# 5. roofline vs the measured TP-8 profile on H200: the same steps and workload, both models
PYTHONPATH=. python "$D/roofline_vs_profile.py" "$TRACES" "$D/roofline-vs-profile.md"

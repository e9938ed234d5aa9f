#!/bin/sh
# Regenerate the paper-setting (A100) results with intervals and named conventions.
# Usage, from the repository root:  sh results/paper-a100/regenerate.sh [GPU_PROFILE_GPU]
# Needs the real traces in ../shared/traces (or TRACES=DIR). Each sweep writes its own folder; the tables
# (README's capacity tables per convention preset) come from `python -m bulletsim.paper_table`.
# Set GPU=h200 (or any GPU with a profile) to redo the same study on another GPU's profile.
set -eu
GPU="${GPU:-a100}"
OUT="${OUT:-results/paper-a100}"
TRACES="${TRACES:-../shared/traces}"
# every file the sweeps read, before any folder is replaced (never the embedded models)
PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} python -m bulletsim.workload.require "$TRACES" \
  sharegpt splitwise-code arxiv arxiv-long || exit 2
COMMON="--policy bullet --policy chunked-1024 --policy chunked-2048 -n 5000 --gpu $GPU \
 --model llama-3.1-8b --latency profile --traces-dir "$TRACES" \
 --set chunked.max_running_requests=1024 --rel-tol 0.01 --seeds 0,1,2 --workers 2 -q"
# the default convention of the simulated system (SGLang bench_serving, Llama-3 counts + BOS);
# this one is also the speed benchmark of issue 11 (3 workloads x 3 policies x 3 seeds)
bulletsim sweep $COMMON --trace sharegpt --trace splitwise-code --trace arxiv \
  --rates 1,2,3,4,6,8,10,12,16 --convention sglang-llama3 --out "$OUT/sglang-llama3"
# ShareGPT counted the two other ways the issue names (the Azure trace has its own counts)
bulletsim sweep $COMMON --trace sharegpt --rates 2,4,6,8,12 --convention llama2-nobos \
  --no-timeline --out "$OUT/llama2-nobos"
bulletsim sweep $COMMON --trace sharegpt --rates 4,8,12,16,24 --convention sglang-llama3-chat \
  --no-timeline --out "$OUT/sglang-llama3-chat"
# arXiv from the long (> 4K prefill) table: the paper's arXiv rates are 0.5-0.9 req/s
bulletsim sweep $COMMON --trace arxiv --rates 0.25,0.5,1,2 --convention arxiv-long \
  --no-timeline --out "$OUT/arxiv-long"
python -m bulletsim.paper_table "$OUT" arxiv-long llama2-nobos sglang-llama3 sglang-llama3-chat

#!/bin/bash
# Simulated capacity of Bullet on one H200 under each SM partition mechanism (issue 16).
# The settings of results/h200/ (Table-4 SLOs, 5,000 requests per point from the real trace
# files, seeds 0,1,2, capacity to 1%); only --mechanism changes between the bullet sweeps.
# chunked-2048 runs once (it has no SM partitions). CPU only.
#
#   bash results/mechanisms-h200/regenerate.sh [TRACES_DIR]
#
# The real trace files are not in the repository: TRACES_DIR, else $BULLETSIM_TRACES_DIR, else
# $TRACES, else ../shared/traces beside the repository. Run from anywhere.
set -eu
cd "$(dirname "$0")/../.."
traces=${1:-${BULLETSIM_TRACES_DIR:-${TRACES:-../shared/traces}}}
if [ ! -d "$traces" ]; then
  echo "error: trace folder not found: $traces (give it as the first argument or set BULLETSIM_TRACES_DIR)" >&2
  exit 2
fi
traces=$(realpath "$traces")
# every file the sweeps read, before any folder is replaced (never the embedded models)
PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} python -m bulletsim.workload.require "$traces" \
  sharegpt splitwise-code arxiv || exit 2
common=(--trace sharegpt --trace splitwise-code --trace arxiv --rates 4,8,12,16,24,32,40,48
  -n 5000 --gpu h200 --model llama-3.1-8b --latency profile --traces-dir "$traces"
  --set chunked.max_running_requests=1024 --rel-tol 0.01 --workers 1 --no-timeline --no-plots -q)
bulletsim sweep --policy bullet --policy chunked-2048 --mechanism green "${common[@]}" \
  --out results/mechanisms-h200/sweep-green
for m in libsmctrl mps none; do
  bulletsim sweep --policy bullet --mechanism $m "${common[@]}" --out results/mechanisms-h200/sweep-$m
done
python results/mechanisms-h200/capacity_table.py results/mechanisms-h200
# The same with the libsmctrl-measured profile as the latency model (--profile: both policies
# are priced by it). The committed sweep-libsmctrl-own-profile/ was made before --profile
# existed, from a copy of the tree whose H200 profile was replaced by this file; a run with
# --profile and one from such a tree gave identical summaries (chunked-2048, sharegpt, n=300).
bulletsim sweep --policy bullet --policy chunked-2048 --mechanism libsmctrl "${common[@]}" \
  --profile results/mechanisms-h200/profile-libsmctrl/h200__llama-3.1-8b.libsmctrl.json \
  --out results/mechanisms-h200/sweep-libsmctrl-own-profile

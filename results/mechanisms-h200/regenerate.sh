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
common=(--trace sharegpt --trace splitwise-code --trace arxiv --rates 4,8,12,16,24,32,40,48
  -n 5000 --gpu h200 --model llama-3.1-8b --latency profile --traces-dir "$traces"
  --set chunked.max_running_requests=1024 --rel-tol 0.01 --workers 1 --no-timeline --no-plots -q)
bulletsim sweep --policy bullet --policy chunked-2048 --mechanism green "${common[@]}" \
  --out results/mechanisms-h200/sweep-green
for m in libsmctrl mps none; do
  bulletsim sweep --policy bullet --mechanism $m "${common[@]}" --out results/mechanisms-h200/sweep-$m
done
python results/mechanisms-h200/capacity_table.py results/mechanisms-h200
# The same with the libsmctrl-measured profile as the latency model, from a copy of the tree
# whose H200 profile is replaced (results/h200's "previous profile" column was made this way).
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
git archive HEAD | tar x -C "$tree"
cp results/mechanisms-h200/profile-libsmctrl/h200__llama-3.1-8b.libsmctrl.json \
  "$tree/bulletsim/data/profiles/h200__llama-3.1-8b.json"
(cd "$tree" && PYTHONPATH=$tree python -m bulletsim.cli sweep --policy bullet \
  --policy chunked-2048 --mechanism libsmctrl "${common[@]}" --out sweep-own)
rm -rf results/mechanisms-h200/sweep-libsmctrl-own-profile
cp -r "$tree/sweep-own" results/mechanisms-h200/sweep-libsmctrl-own-profile

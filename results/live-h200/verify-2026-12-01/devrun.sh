#!/usr/bin/env bash
# Lead's final check of the code on main on the GPU: the issue-10 "done when" command as a
# user types it (bulletsim live CLI, documented defaults), a pdmux-slo CLI run, fidelity on the
# fresh run, and a refusal. EXEC=fake runs the same on CPU (local dry run).
set -u
cd "$(dirname "$0")"
OUT=${OUTDIR:-/tmp/out/final}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export BULLETSIM_GIT_SHA=$(cat GIT_SHA)
EXEC=${EXEC:-gpu}
if ! python3 -c "import simpy" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site-final ../.whl/simpy-*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site-final
fi
bs(){ python3 -c 'import sys; from bulletsim.cli import main; sys.argv[0]="bulletsim"; main()' "$@"; }
echo "final check: code $BULLETSIM_GIT_SHA exec=$EXEC $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu --format=csv,noheader 2>/dev/null
st=()
t0=$(date +%s)
timeout 150 bash -c "$(declare -f bs); bs live --trace splitwise --policy bullet --gpu h200 -n 500 --rate 19 --traces-dir traces --executor $EXEC --out '$OUT/splitwise-bullet-r19-n500'"
st+=("live bullet splitwise n500 rc=$? $(( $(date +%s) - t0 ))s"); t0=$(date +%s)
timeout 90 bash -c "$(declare -f bs); bs live --trace sharegpt --policy pdmux-slo --gpu h200 -n 200 --rate 60.9 --traces-dir traces --executor $EXEC --out '$OUT/sharegpt-pdmux-slo-r60.9-n200'"
st+=("live pdmux-slo sharegpt n200 rc=$? $(( $(date +%s) - t0 ))s"); t0=$(date +%s)
timeout 60 bash -c "$(declare -f bs); bs fidelity '$OUT/splitwise-bullet-r19-n500' --table '$OUT/fidelity.md'"
st+=("fidelity rc=$? $(( $(date +%s) - t0 ))s"); t0=$(date +%s)
timeout 60 bash -c "$(declare -f bs); bs live --trace splitwise --policy bullet -n 10 --executor $EXEC --mechanism libsmctrl --out '$OUT/refused'"
st+=("live --mechanism libsmctrl (expect exit 2 on gpu) rc=$?")
echo "=== final summary ==="; printf '%s\n' "${st[@]}"
for d in "$OUT"/*/; do [ -f "$d/summary.json" ] && python3 - "$d" <<'PY'
import json, sys, os
d = sys.argv[1]; s = json.load(open(os.path.join(d, "summary.json")))
keys = ("throughput_req_s", "ttft_p50_s", "tpot_mean_s", "slo_attainment")
print(os.path.basename(d.rstrip("/")), {k: s.get(k) for k in keys if k in s})
PY
done
exit 0

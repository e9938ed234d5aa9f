#!/usr/bin/env bash
# Lead's final round of session S3: (1) the committed decode benchmark (live_h200.py --part
# bandwidth) of main with the measured read ceiling; (2) the issue-10 CLI check of main
# (bullet splitwise n=500 at 19 req/s, fidelity on it, pdmux-slo, a refusal); (3) host A/B:
# the same bullet run with the code of the committed runs (d99a77c), same machine, to tell
# whether the host-per-iteration rise (3.05 -> 5.7 ms) is the code or the machine.
set -u
export PARTS=${PARTS:-bw new old rest}
cd "$(dirname "$0")"
OUT=${OUTDIR:-/tmp/out/s3final}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1
if ! python3 -c "import simpy" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site-s3 ../.whl/simpy-*.whl
  export PYTHONPATH=${PYTHONPATH:-}:/tmp/site-s3
fi
BASE_PP=${PYTHONPATH:-}
T0=$(date +%s); el(){ echo "[$(( $(date +%s) - T0 ))s] $*"; }
echo "S3 final: new=$(cat new/GIT_SHA) old=d99a77c $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu --format=csv,noheader 2>/dev/null
bs(){ python3 -c 'import sys; from bulletsim.cli import main; sys.argv[0]="bulletsim"; main()' "$@"; }
export -f bs
PARTS=${PARTS:-bw new old rest}
has(){ [[ " $PARTS " == *" $1 "* ]]; }
has bw && ( cd new && export PYTHONPATH=$PWD:$PWD/benchmarks:$BASE_PP BULLETSIM_GIT_SHA=$(cat GIT_SHA)
  timeout 110 python3 benchmarks/live_h200.py --part bandwidth --out "$OUT/bw" --traces-dir ../traces; el "bandwidth rc=$?" )
has new && ( cd new && export PYTHONPATH=$PWD:$BASE_PP BULLETSIM_GIT_SHA=$(cat GIT_SHA)
  timeout 150 bash -c "bs live --trace splitwise --policy bullet --gpu h200 -n 500 --rate 19 --traces-dir ../traces --out '$OUT/new-splitwise-bullet-r19-n500'"; el "new bullet rc=$?" )
has old && ( cd old && export PYTHONPATH=$PWD:$BASE_PP BULLETSIM_GIT_SHA=d99a77c
  timeout 150 bash -c "bs live --trace splitwise --policy bullet --gpu h200 -n 500 --rate 19 --traces-dir ../traces --out '$OUT/old-splitwise-bullet-r19-n500'"; el "old bullet rc=$?" )
has new2 && ( cd new && export PYTHONPATH=$PWD:$BASE_PP BULLETSIM_GIT_SHA=$(cat GIT_SHA)
  timeout 150 bash -c "bs live --trace splitwise --policy bullet --gpu h200 -n 500 --rate 19 --traces-dir ../traces --out '$OUT/new2-splitwise-bullet-r19-n500'"; el "new2 bullet rc=$?" )
if has rep; then  # repeatability: the same two configs three times each, interleaved
  for i in 1 2 3; do
    for pol in bullet chunked; do
      ( cd new && export PYTHONPATH=$PWD:$BASE_PP BULLETSIM_GIT_SHA=$(cat GIT_SHA)
        timeout 130 bash -c "bs live --trace splitwise --policy $pol --gpu h200 -n 500 --rate 19 --traces-dir ../traces --out '$OUT/rep$i-splitwise-$pol-r19-n500'" > "$OUT/rep$i-$pol.txt" 2>&1
        el "rep $i $pol rc=$?"; grep -E "^live \(gpu\)|^throughput" "$OUT/rep$i-$pol.txt" )
    done
  done
fi
has rest && ( cd new && export PYTHONPATH=$PWD:$BASE_PP BULLETSIM_GIT_SHA=$(cat GIT_SHA)
  timeout 90 bash -c "bs live --trace sharegpt --policy pdmux-slo --gpu h200 -n 200 --rate 60.9 --traces-dir ../traces --out '$OUT/new-sharegpt-pdmux-slo-r60.9-n200'"; el "new pdmux-slo rc=$?"
  timeout 60 bash -c "bs fidelity '$OUT/new-splitwise-bullet-r19-n500' --table '$OUT/fidelity.md'"; el "fidelity rc=$?"
  timeout 60 bash -c "bs live --trace splitwise --policy bullet -n 10 --mechanism libsmctrl --out '$OUT/refused'"; el "refusal (expect 2) rc=$?"
)
echo "=== S3 final summary ==="
python3 - "$OUT" <<'PY'
import json, sys, os, glob
out = sys.argv[1]
for d in sorted(glob.glob(out + "/*/")):
    n = os.path.basename(d.rstrip("/"))
    try:
        s = json.load(open(d + "summary.json")); l = json.load(open(d + "live.json"))
    except Exception:
        continue
    print(n, {k: s.get(k) for k in ("throughput_req_s", "ttft_p50_s", "tpot_mean_s", "slo_attainment")},
          "host ms/it", round(l["host_ms_per_iteration"]["mean"], 3), "p50", round(l["host_ms_per_iteration"]["p50"], 3),
          "device ms/it", round(l["device_ms_per_iteration"]["mean"], 3), "gap p50", round(l["back_to_back_gap_ms"]["p50"], 3),
          "launches", l["executor"].get("num_launches"), "setup_s", round(l["executor"].get("setup_s", -1), 1))
try:
    b = json.load(open(out + "/bw/bandwidth.json")); g = b["graph"]
    print(f"decode 64x2048: {g['step_ms']:.3f} ms {g['achieved_tb_s']:.2f} TB/s = {g['of_datasheet_4p8']:.1%} of 4.8, "
          f"{g['of_measured_copy']:.1%} of copy {b['copy_tb_s']:.2f}, {g.get('of_measured_read', 0):.1%} of read {b.get('read_tb_s', 0):.2f}")
except Exception as e:
    print("bandwidth missing", e)
PY
el done

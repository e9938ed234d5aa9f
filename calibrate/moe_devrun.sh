#!/bin/bash
# Device round script of helper "moe" (issue 13, Qwen3-235B-A22B MoE). Run by the lead as
#   cd .dev-moe && OUTDIR=/tmp/out/moe timeout <wall> bash devrun.sh   (a copy of this file)
# or from a checkout: OUTDIR=... bash calibrate/moe_devrun.sh
# SUITE=r1 (set it): kernel checks + grouped GEMM vs loop timings + a tiny calibration sweep (<= 90 s);
# SUITE=r2 (default): the per-GPU profile sweeps, TP 8 then EP 8 (calibrate.moe_calibrate; <= 200 s).
set -u
OUTD=${OUTDIR:-/tmp/out/moe}
mkdir -p "$OUTD"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
SUITE=${SUITE:-r2}
run() {  # run NAME SECONDS CMD...: each part in its own timed-out process; go on past failures
  local name=$1 secs=$2; shift 2
  local t0=$(date +%s)
  timeout "$secs" "$@" > "$OUTD/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - t0 ))s" | tee -a "$OUTD/parts.txt"
  tail -6 "$OUTD/$name.log"
}
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.draw,power.limit --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'grouped_mm', hasattr(torch, '_grouped_mm'))"
  if [ "$SUITE" = r1 ]; then
    run check 22 python3 -m calibrate.moe_bench --part check --out "$OUTD"
    run time 25 python3 -m calibrate.moe_bench --part time --out "$OUTD"
    run smoke 38 python3 -m calibrate.moe_calibrate --job smoke --out "$OUTD/smoke"
  else
    # probe first: stage times of one point; if it does not finish, sweep in --safe mode
    run probe ${PROBE_SECS:-28} python3 -m calibrate.moe_calibrate --job probe --out "$OUTD/probe" --stack-after 22
    SAFE=""
    grep -q "^probe rc=0" "$OUTD/parts.txt" || SAFE="--safe"
    echo "sweeps ${SAFE:-with the default kernel candidates}"
    for job in ${R2_JOBS:-tp8 ep8}; do
      run "cal_$job" ${R2_SECS:-80} python3 -m calibrate.moe_calibrate --job "$job" --out "$OUTD/$job" --stack-after 40 $SAFE
    done
  fi
  echo "== summary (moe, SUITE=$SUITE)"
  cat "$OUTD/parts.txt"
  python3 -m calibrate.moe_summary "$OUTD" || true
} 2>&1 | tee "$OUTD/log.txt"

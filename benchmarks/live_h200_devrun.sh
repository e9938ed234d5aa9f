#!/usr/bin/env bash
# Helper "engine" (issue 10 live engine, issue 17 pdmux live): one GPU.
#   SUITE=smoke      (R1) decode bandwidth + breakdown, then chunked/bullet/pdmux at n=60
#   SUITE=splitwise  (R2) chunked-2048, bullet, pdmux at 50/80/100% load, 500 requests each
#   SUITE=sharegpt   (R2) the same on sharegpt, plus the decode bandwidth benchmark and the
#                    --weights check (a 2-layer safetensors checkpoint loaded on the GPU)
#   SUITE=full       both workloads in one process (one GPU, ~2x the wall time)
#   SUITE=check      (R3) the --weights check and the decode benchmark only (~70 s)
# PARTS overrides which parts run ("bandwidth runs"), T_RUNS the runs part's timeout (s),
# POLICIES the suite's policies (comma list; default chunked,bullet,pdmux: the committed runs).
# Everything goes under $OUTDIR/$SUITE (with POLICIES: $OUTDIR/$SUITE-<policies>).
set -u
cd "$(dirname "$0")"; [ -d bulletsim ] || cd ..
SUITE=${SUITE:-smoke}
case "$SUITE" in
  smoke) DEF_PARTS="bandwidth runs"; T_BW=70; T_RUNS=115 ;;
  splitwise) DEF_PARTS="runs"; T_BW=0; T_RUNS=410 ;;
  sharegpt) DEF_PARTS="runs bandwidth weights"; T_BW=60; T_RUNS=320 ;;
  full) DEF_PARTS="bandwidth runs"; T_BW=90; T_RUNS=700 ;;
  check) DEF_PARTS="weights bandwidth"; T_BW=75; T_RUNS=0 ;;
  *) echo "unknown SUITE=$SUITE; valid: smoke splitwise sharegpt full check"; exit 2 ;;
esac
PARTS=${PARTS:-$DEF_PARTS}
T_RUNS=${T_RUNS_OVERRIDE:-$T_RUNS}
POLICIES=${POLICIES:-chunked,bullet,pdmux}
OUT=${OUTDIR:-/tmp/out/engine}/$SUITE
[ "$POLICIES" = chunked,bullet,pdmux ] || OUT=$OUT-${POLICIES//,/+}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONPATH=$PWD:${PYTHONPATH:-}
[ -f GIT_SHA ] && export BULLETSIM_GIT_SHA=$(cat GIT_SHA)
echo "engine devrun: SUITE=$SUITE PARTS=$PARTS POLICIES=$POLICIES code=${BULLETSIM_GIT_SHA:-unknown} $(date -u +%FT%TZ)"
if ! python3 -c "import simpy" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site-engine ../.whl/simpy-*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site-engine
fi
# self-check: imports, a GPU, the fused RoPE/KV kernel against the unfused path on tiny sizes
timeout 30 python3 - <<'EOF' || echo "SELF-CHECK FAILED (continuing)"
import torch, flashinfer, simpy
from bulletsim.models import get_model
from bulletsim.live.gpu.model import LiveModel
print("torch", torch.__version__, "flashinfer", flashinfer.__version__, torch.cuda.get_device_name(0))
import dataclasses
spec = dataclasses.replace(get_model("llama-3.1-8b"), num_layers=2)
m = LiveModel(spec, num_pages=64, page_size=16, num_slots=16)
print("fused rope+kv write matches unfused:", m.fused_rope_store)
EOF
status=()
for part in $PARTS; do
  t0=$(date +%s)
  if [ "$part" = bandwidth ]; then
    timeout "$T_BW" python3 benchmarks/live_h200.py --part bandwidth --out "$OUT" \
      --traces-dir traces
    rc=$?
  elif [ "$part" = weights ]; then
    timeout 45 python3 benchmarks/live_weights_check.py --tmp /tmp/engine-weights-check \
      > "$OUT/weights_check.txt" 2>&1
    rc=$?
    cat "$OUT/weights_check.txt"
  else
    timeout "$T_RUNS" python3 benchmarks/live_h200.py --part runs --suite "$SUITE" \
      --policies "$POLICIES" --out "$OUT" --traces-dir traces
    rc=$?
  fi
  status+=("$part rc=$rc $(( $(date +%s) - t0 ))s")
done
echo "=== engine summary (SUITE=$SUITE) ==="
printf '%s\n' "${status[@]}"
[ -f "$OUT/bandwidth.json" ] && python3 - "$OUT/bandwidth.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
g = d["graph"]
print(f"decode 64x2048: {g['step_ms']:.2f} ms, {g['achieved_tb_s']:.2f} TB/s = "
      f"{g['of_datasheet_4p8']:.0%} of 4.8, {g['of_measured_copy']:.0%} of copy {d['copy_tb_s']:.2f}, "
      f"{g.get('of_measured_read', 0):.0%} of read {d.get('read_tb_s', 0):.2f}")
print("by class (ms):", {k: round(v, 3) for k, v in d.get("breakdown", {}).get("by_class_ms", {}).items()})
for p, e in d.get("forced_gemm_path", {}).items():
    print(f"  forced {p}: {e.get('step_ms', e.get('error'))}")
print("  unfused rope/kv:", d.get("unfused_rope_kv", {}).get("step_ms"))
print("  gemm alone TB/s:", {k: round(v["tb_s"], 2) for k, v in d.get("gemm_alone", {}).items() if "tb_s" in v})
print("  host prepare ms per decode step:", round(d.get("host_prepare_ms", -1), 3), d.get("host_prepare_split_ms"))
sk = d.get("experimental_skinny_gemm", {})
print("  experimental skinny split-K qkv/o/down:", sk.get("step_ms", sk.get("error")), sk.get("achieved_tb_s"))
EOF
[ -f "$OUT/runs.json" ] && python3 - "$OUT/runs.json" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1])):
    if "error" in r:
        print(f"{r['run']}: FAILED {r['error'][:150]}")
    else:
        print(f"{r['run']}: {r['wall_s']:.0f}s thr {r['throughput_req_s']:.2f} TTFT50 "
              f"{r['ttft_p50_ms']:.0f} TPOT {r['tpot_mean_ms']:.1f} SLO {r['slo_attainment']:.2f} "
              f"host/dev {r['host_ms_per_iteration']:.2f}/{r['device_ms_per_iteration']:.2f} ms "
              f"gap50 {r['back_to_back_gap_ms_p50']}")
EOF
exit 0

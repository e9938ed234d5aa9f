#!/usr/bin/env bash
# Helper "decode" (issue 10: decode step >= 80% of the HBM roofline at batch 64 x 2048), one GPU.
# Copied to devrun.sh at the root of the tree the lead runs:
#   OUTDIR=/tmp/out/decode timeout <wall> bash devrun.sh
# PARTS selects parts (R1: "selfcheck gemm attn step timing"; R2, the default: "check
# bandwidth step attn timing"); each runs in its own timeout'ed process and a failing part
# does not stop the next. Everything under $OUTDIR. The step part reads gemm.json (the best
# GEMM paths) from $OUTDIR, else from r1/ beside this script (R1's, carried).
#   check      the small kernels with and without PDL in a CUDA graph: bit-equal outputs
#   bandwidth  benchmarks/live_h200.py --part bandwidth: the engine's own decode step (the
#              committed figure), breakdown, forced GEMM paths, PDL off, unfused RoPE/KV
set -u
cd "$(dirname "$0")"; [ -d bulletsim ] || cd ..
PARTS=${PARTS:-check bandwidth step attn timing}
OUT=${OUTDIR:-/tmp/out/decode}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONPATH=$PWD:$PWD/benchmarks:${PYTHONPATH:-}
[ -f GIT_SHA ] && export BULLETSIM_GIT_SHA=$(cat GIT_SHA)
if ! python3 -c "import simpy" 2>/dev/null; then  # the live engine's loop needs it
  python3 -m pip install -q --no-index --no-deps --target /tmp/site-decode ../.whl/simpy-*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site-decode
fi
for f in gemm.json attn.json; do [ -f "$OUT/$f" ] || { [ -f "r1/$f" ] && cp "r1/$f" "$OUT/$f"; }; done
echo "decode devrun: PARTS=$PARTS code=${BULLETSIM_GIT_SHA:-unknown} $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,driver_version --format=csv,noheader || true
status=()
run() {  # run NAME TIMEOUT ARGS...
  local name=$1 t=$2; shift 2
  local t0=$(date +%s)
  timeout "$t" python3 benchmarks/decode_variants.py "$@"
  status+=("$name rc=$? $(( $(date +%s) - t0 ))s")
}
for part in $PARTS; do
  case "$part" in
    selfcheck)  # the step part on tiny shapes (2 layers, batch 8, context 64): every GEMM path
      # and attention wrapper kind the real parts use, checked against the reference step
      run selfcheck 35 --part step --tiny --out "$OUT/tiny" ;;
    check) run check 30 --part check --out "$OUT" ;;
    bandwidth)
      t0=$(date +%s)
      timeout 75 python3 benchmarks/live_h200.py --part bandwidth --out "$OUT" --traces-dir traces
      status+=("bandwidth rc=$? $(( $(date +%s) - t0 ))s") ;;
    gemm) run gemm 45 --part gemm --out "$OUT" ;;
    attn) run attn 40 --part attn --out "$OUT" ;;
    step) run step 60 --part step --profile --out "$OUT" ;;
    timing) run timing 20 --part timing --out "$OUT" ;;
    *) echo "unknown part $part; valid: selfcheck check bandwidth gemm attn step timing" ;;
  esac
done
echo "=== decode summary ==="
printf '%s\n' "${status[@]}"
python3 - "$OUT" <<'EOF' || true
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(n):
    try:
        return json.loads((out / n).read_text())
    except Exception:
        return {}
g = load("gemm.json")
for op, r in g.get("ops", {}).items():
    ok = {p: v["tb_s"] for p, v in r["paths"].items() if "tb_s" in v}
    top = sorted(ok.items(), key=lambda kv: -kv[1])[:4]
    print(f"gemm {op:8s} best {r.get('best')}: " + ", ".join(f"{p} {v:.2f}" for p, v in top)
          + f" | cublas {ok.get('cublas', 0):.2f} lt {ok.get('cublaslt-addmm', 0):.2f} TB/s")
a = load("attn.json")
for n, r in a.get("variants", {}).items():
    print(f"attn {n:22s} " + (f"{r['ms_per_step']:.3f} ms {r['tb_s']:.2f} TB/s plan "
          f"{r['plan_host_ms']:.3f} ms" if "tb_s" in r else "ERROR " + r.get("error", "")[:120]))
s = load("step.json")
for n, r in s.get("variants", {}).items():
    if "step_ms" in r:
        print(f"step {n:28s} {r['step_ms']:.3f} ms {r['achieved_tb_s']:.2f} TB/s "
              f"{r['of_datasheet_4p8']:.1%} tok={r['tokens_equal_to_reference']:.2f} "
              f"err={r['hidden_rel_err_vs_reference']:.2e}")
    else:
        print(f"step {n:28s} ERROR {r.get('error', '')[:150]}")
print("step best:", s.get("best"))
b = load("bandwidth.json")
if "graph" in b:
    g = b["graph"]
    print(f"ENGINE decode 64x2048: {g['step_ms']:.3f} ms {g['achieved_tb_s']:.2f} TB/s = "
          f"{g['of_datasheet_4p8']:.1%} of 4.8, {g['of_measured_copy']:.1%} of copy "
          f"{b.get('copy_tb_s', 0):.2f}, {g.get('of_measured_read', 0):.1%} of read "
          f"{b.get('read_tb_s', 0):.2f}; pdl={g.get('decode_pdl')}")
    print("  by class (ms):", {k: round(v, 3) for k, v in b.get("breakdown", {}).get("by_class_ms", {}).items()})
    for k in ("decode_pdl_off", "unfused_rope_kv", "experimental_skinny_gemm"):
        e = b.get(k, {})
        print(f"  {k}: {e.get('step_ms', e.get('error'))}")
    for p, e in b.get("forced_gemm_path", {}).items():
        print(f"  forced {p}: {e.get('step_ms', e.get('error'))}")
    print("  host prepare ms:", b.get("host_prepare_ms"))
c = load("check.json")
if c:
    print("check:", c)
t = load("timing.json")
for c in t.get("cases", []):
    print("timing", c["op"], c["rows"], {k: round(v["median"], 4) for k, v in c.items()
                                         if isinstance(v, dict)})
EOF
exit 0

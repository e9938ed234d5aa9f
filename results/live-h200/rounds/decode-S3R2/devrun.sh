#!/usr/bin/env bash
# Lead's round S3R2 (S3R1 hung on a bare wait): decode attention alternatives (XQA, FA3 paged), HBM read ceiling, the step
# with them, and cProfile of the live loop (chunked and bullet, splitwise n=150 at 19 req/s).
set -u
DEV_OUT=${OUT:-/tmp}
cd "$(dirname "$0")"
OUT=${OUTDIR:-/tmp/out/attn}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONPATH=$PWD:$PWD/benchmarks:${PYTHONPATH:-}
export BULLETSIM_GIT_SHA=$(cat GIT_SHA) PYTHONUNBUFFERED=1
if ! python3 -c "import simpy" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site-attn ../.whl/simpy-*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site-attn
fi
echo "S3R2 code=$BULLETSIM_GIT_SHA $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,driver_version --format=csv,noheader || true
hostprof(){
  local pol=$1
  timeout 100 python3 - "$pol" "$OUT" <<'PY'
import cProfile, pstats, sys, io
pol, out = sys.argv[1], sys.argv[2]
from bulletsim.cli import main
sys.argv = ["bulletsim", "live", "--trace", "splitwise", "--policy", pol, "--gpu", "h200", "-n", "150",
            "--rate", "19", "--traces-dir", "traces", "--out", f"{out}/live-{pol}"]
prof = cProfile.Profile()
try:
    prof.runcall(main)
except SystemExit as e:
    print("exit", e.code)
prof.dump_stats(f"{out}/host-{pol}.prof")
for key in ("tottime", "cumulative"):
    s = io.StringIO(); pstats.Stats(prof, stream=s).sort_stats(key).print_stats(45)
    open(f"{out}/host-{pol}-{key}.txt", "w").write(s.getvalue())
PY
  el "host profile $pol rc=$?"
}
T0=$(date +%s); el(){ echo "[$(( $(date +%s) - T0 ))s] $*"; }
# NB: never a bare `wait` here: bash waits for the tee process substitution too (R1 hung)
pids=()
for m in xqa16 fa3paged; do
  ( timeout 200 python3 benchmarks/decode_attn_kinds.py --jit $m > "$OUT/jit-$m.txt" 2>&1; echo "rc=$?" >> "$OUT/jit-$m.txt" ) &
  pids+=($!)
done
wait ${pids[0]}; el "jit xqa16 done"; cat "$OUT/jit-xqa16.txt"
hostprof chunked
wait ${pids[1]}; el "jit fa3paged done"; tail -n 3 "$OUT/jit-fa3paged.txt"
ATTN=kinds timeout 90 python3 benchmarks/decode_variants.py --part attn --out "$OUT"; el "attn rc=$?"
cp r1/gemm.json "$OUT/gemm.json"
timeout 150 python3 benchmarks/decode_variants.py --part step --out "$OUT"; el "step rc=$?"
hostprof bullet
tar czf "$DEV_OUT/fi_cache_new.tgz" -C ~ .cache/flashinfer 2>/dev/null; ls -la "$DEV_OUT/fi_cache_new.tgz"
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for n in ("roofline", "attn", "step"):
    try:
        r = json.loads((out / f"{n}.json").read_text())
    except Exception as e:
        print(n, "missing", e); continue
    if n == "roofline":
        print("read TB/s", {k: round(v["tb_s"], 3) for k, v in r["tilings"].items()}, "copy", round(r["copy_tb_s_read_plus_write"], 3))
    else:
        for k, v in r.get("variants", {}).items():
            print(n, k, {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in v.items() if kk in ("ms_per_step", "tb_s", "rel_err", "step_ms", "achieved_tb_s", "of_datasheet_4p8", "tokens_equal_to_reference", "hidden_rel_err_vs_reference", "error")})
PY
el "done"

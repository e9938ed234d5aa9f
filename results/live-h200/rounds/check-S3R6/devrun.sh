set -u
cd "$(dirname "$0")"
OUT=${OUTDIR:-/tmp/out/chk}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --target /tmp/site-chk ../.whl/simpy-*.whl
export PYTHONPATH=$PWD:$PWD/benchmarks:${PYTHONPATH:-}:/tmp/site-chk
timeout 60 python3 chk.py 2>&1 | tee "$OUT/chk.txt"
timeout 110 python3 benchmarks/live_h200.py --part bandwidth --out "$OUT/bw" --traces-dir traces > "$OUT/bw.txt" 2>&1; echo "bandwidth rc=$?"
grep -E "^decode step|decode pdl off|unfused|Traceback|Error" "$OUT/bw.txt" | cut -c1-300
python3 -c "import json; b=json.load(open('$OUT/bw/bandwidth.json')); print({k: b.get(k) for k in ('copy_tb_s','read_tb_s')}); print({k: b.get(k,{}).get('step_ms', b.get(k,{}).get('error')) for k in ('graph','decode_pdl_off','unfused_rope_kv','experimental_skinny_gemm')})"

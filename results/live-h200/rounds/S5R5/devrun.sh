#!/usr/bin/env bash
# Session S4 device rounds. PARTS (space list): test bench runs-splitwise runs-sharegpt
# Run from the repo root: bash .dev-s5/devrun.sh ; writes $OUT/s5.tgz (+ log)
set -u
R=$PWD
OUTD=/tmp/s5out; mkdir -p $OUTD
exec > >(tee -a $OUTD/log.txt) 2>&1
export PYTHONUNBUFFERED=1
export BULLETSIM_GIT_SHA=$(cat .dev-s5/GIT_SHA)
echo "S5 devrun PARTS=$PARTS code=$BULLETSIM_GIT_SHA $(date -u +%FT%TZ)"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$R
mkdir -p ~/.cache
if [ -f .dev-s5/fi_cache.tgz ]; then tar -xzf .dev-s5/fi_cache.tgz -C ~/.cache; echo "JIT cache restored"; fi
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv,noheader
save() { tar -czf $OUT/s5.tgz -C $OUTD . 2>/dev/null; [ -d ~/.cache/flashinfer ] && tar -czf $OUT/fi_cache.tgz -C ~/.cache flashinfer; }
t0=$(date +%s)
for part in $PARTS; do
  s=$(date +%s)
  case $part in
    test)
      timeout 150 python3 -m pytest -q -m gpu tests/test_live.py -k gpu_executor_serves -p no:cacheprovider 2>&1 | tail -5 ;;
    bench)
      timeout 200 python3 benchmarks/eager_attention.py --out $OUTD/eager_attention.json ;;
    hostprof)
      timeout 200 python3 benchmarks/eager_host_profile.py --out $OUTD/hostprof --traces-dir .dev-s5/traces -n ${HP_N:-40} --trace ;;
    stall)
      timeout 200 python3 benchmarks/host_stall_probe.py --out $OUTD/stall --traces-dir .dev-s5/traces > $OUTD/stall.txt; python3 -c "import json; d=json.load(open(\"$OUTD/stall/stalls.json\")); r=d[\"run_started_at_s\"]; [print(c[\"at_s\"], c[\"after_beat\"], c[\"repr\"][:400]) for c in d[\"compiles\"] if \"persistent\" in c[\"repr\"]]; print(\"run started\", r, \"stalls\", [(s[\"at_s\"], s[\"length_ms_about\"]) for s in d[\"stalls\"]])" ;;
    gputest)
      ( set -o pipefail; timeout 200 python3 -m pytest -q -m gpu tests/test_live_gpu.py tests/test_live.py -p no:cacheprovider 2>&1 | tail -15 ) || { echo "GPU TESTS FAILED: stopping"; save; exit 1; } ;;
    hostops)
      timeout 240 python3 benchmarks/eager_host_ops.py --out $OUTD/hostops --traces-dir .dev-s5/traces ;;
    gc-ab)
      timeout 150 python3 benchmarks/live_h200.py --part runs --suite splitwise --policies chunked --only splitwise-chunked --out $OUTD/gcab --traces-dir .dev-s5/traces ;;
    verify)  # the final check of HEAD from this checkout
      ( set -o pipefail; timeout 200 python3 -m pytest -q -m gpu tests/test_live_gpu.py tests/test_live.py -p no:cacheprovider 2>&1 | tail -4 )
      timeout 150 $R/.dev-s5/bs live --trace splitwise --policy bullet --gpu h200 -n 500 --rate 19 --traces-dir $R/.dev-s5/traces --out $OUTD/verify-splitwise-bullet-r19-n500; echo "live rc=$?"
      timeout 60 $R/.dev-s5/bs live --trace splitwise --policy bullet -n 10 --mechanism libsmctrl --out $OUTD/refused; echo "refusal (expect 2) rc=$?" ;;
    bandwidth)
      timeout 240 python3 benchmarks/live_h200.py --part bandwidth --out $OUTD/bandwidth --traces-dir .dev-s5/traces 2>&1 | grep -v "^\[W" | tail -40 ;;
    runs-splitwise|runs-sharegpt)
      w=${part#runs-}
      timeout ${T_RUNS:-330} python3 benchmarks/live_h200.py --part runs --suite $w --policies chunked,bullet --out $OUTD/$w --traces-dir .dev-s5/traces ;;
  esac
  echo "[$(( $(date +%s) - t0 ))s] $part rc=$? ($(( $(date +%s) - s ))s)"
  save
done
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
save
echo done

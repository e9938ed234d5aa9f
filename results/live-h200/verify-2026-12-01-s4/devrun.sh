#!/usr/bin/env bash
# Session S4 device rounds. PARTS (space list): test bench runs-splitwise runs-sharegpt
# Run from the repo root: bash .dev-s4/devrun.sh ; writes $OUT/s4.tgz (+ log)
set -u
R=$PWD
OUTD=/tmp/s4out; mkdir -p $OUTD
exec > >(tee -a $OUTD/log.txt) 2>&1
export PYTHONUNBUFFERED=1
export BULLETSIM_GIT_SHA=$(cat .dev-s4/GIT_SHA)
echo "S4 devrun PARTS=$PARTS code=$BULLETSIM_GIT_SHA $(date -u +%FT%TZ)"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$R
mkdir -p ~/.cache
if [ -f .dev-s4/fi_cache.tgz ]; then tar -xzf .dev-s4/fi_cache.tgz -C ~/.cache; echo "JIT cache restored"; fi
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv,noheader
save() { tar -czf $OUT/s4.tgz -C $OUTD . 2>/dev/null; [ -d ~/.cache/flashinfer ] && tar -czf $OUT/fi_cache.tgz -C ~/.cache flashinfer; }
t0=$(date +%s)
for part in $PARTS; do
  s=$(date +%s)
  case $part in
    test)
      timeout 150 python3 -m pytest -q -m gpu tests/test_live.py -k gpu_executor_serves -p no:cacheprovider 2>&1 | tail -5 ;;
    bench)
      timeout 200 python3 benchmarks/eager_attention.py --out $OUTD/eager_attention.json ;;
    hostprof)
      timeout 200 python3 benchmarks/eager_host_profile.py --out $OUTD/hostprof --traces-dir .dev-s4/traces -n ${HP_N:-40} --trace ;;
    gc-ab)
      timeout 150 python3 benchmarks/live_h200.py --part runs --suite splitwise --policies chunked --only splitwise-chunked --out $OUTD/gcab --traces-dir .dev-s4/traces ;;
    verify)  # the final check of main, from .dev-s4/clone (git archive of HEAD)
      ( export PYTHONPATH=/tmp/site:$R

        timeout 150 python3 -m pytest -q -m gpu tests/test_live.py -k gpu_executor_serves -p no:cacheprovider 2>&1 | tail -3
        timeout 150 $R/.dev-s4/bs live --trace splitwise --policy bullet --gpu h200 -n 500 --rate 19 --traces-dir $R/.dev-s4/traces --out $OUTD/verify-splitwise-bullet-r19-n500; echo "live rc=$?"
        timeout 60 $R/.dev-s4/bs fidelity $OUTD/verify-splitwise-bullet-r19-n500 --table $OUTD/verify-fidelity.md; echo "fidelity rc=$?"
        timeout 90 python3 benchmarks/eager_attention.py --quick --out $OUTD/eager-attention-quick.json; echo "bench rc=$?"
        timeout 60 $R/.dev-s4/bs live --trace splitwise --policy bullet -n 10 --mechanism libsmctrl --out $OUTD/refused; echo "refusal (expect 2) rc=$?" ) ;;
    runs-splitwise|runs-sharegpt)
      w=${part#runs-}
      timeout ${T_RUNS:-330} python3 benchmarks/live_h200.py --part runs --suite $w --policies chunked,bullet --out $OUTD/$w --traces-dir .dev-s4/traces ;;
  esac
  echo "[$(( $(date +%s) - t0 ))s] $part rc=$? ($(( $(date +%s) - s ))s)"
  save
done
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
save
echo done

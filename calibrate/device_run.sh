#!/bin/bash
# One device call of the calibrator (from the repo copy the device tool runs in, e.g.
# `cd .dev-gpu && bash calibrate/device_run.sh bench quick`). Stages, in the order given:
#   bench  kernel paths per partition (calibrate.kernel_bench), flashinfer JIT warmed in
#          parallel processes, JIT cache saved as $OUT/fi_cache.tgz.part* (16 MB pieces)
#   quick  bulletsim calibrate --quick;  std  the standard calibration
# Wheels come from ../.whl, a saved JIT cache from ../.ficache/fi_cache.tgz (if present).
set -u
OUTD=${OUT:-/tmp/out}
mkdir -p "$OUTD"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  ../.whl/apache_tvm_ffi*.whl ../.whl/flashinfer_python*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
if [ -f ../.ficache/fi_cache.tgz ]; then tar xzf ../.ficache/fi_cache.tgz -C ~ && stamp "JIT cache restored"; fi
make -C native > "$OUTD/make.log" 2>&1 || stamp "native build failed (Triton probe used)"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.draw,power.limit \
  --format=csv > "$OUTD/smi.txt" 2>&1
stamp "setup done"
for stage in "$@"; do
  case $stage in
    bench)
      for w in fa3 fa2 tc cc; do
        python3 -m calibrate.kernel_bench --warm $w > "$OUTD/warm_$w.log" 2>&1 &
      done
      timeout 420 python3 -m calibrate.kernel_bench --out "$OUTD" 2>&1 | tee "$OUTD/bench.log"
      wait
      stamp "bench done"
      (cd ~ && tar czf - .cache/flashinfer) | split -b 15M - "$OUTD/fi_cache.tgz.part"
      stamp "JIT cache saved: $(du -sh ~/.cache/flashinfer | cut -f1)"
      ;;
    quick|std)
      flag=""; [ "$stage" = quick ] && flag="--quick"
      timeout 560 python3 -m calibrate calibrate --gpu h200 $flag --out /tmp/$stage --no-install \
        2>&1 | grep -v "^\s*$" | tail -40 | tee "$OUTD/$stage.log"
      tar czf "$OUTD/$stage.tgz" -C /tmp "$stage"
      stamp "$stage done"
      ;;
  esac
done

#!/bin/bash
# Issue 13 device stages (Llama-3.1-70B TP shards and NCCL collectives), run from a copy of
# the repository on the device: `OUTDIR=DIR bash calibrate/device_run_large.sh STAGE:SECONDS...`
#   coll-smoke, coll-full  python3 -m calibrate.collectives on every visible GPU (>= 2)
#   tp<N>-<grid>           bulletsim calibrate --model llama-3.1-70b --tp N --grid <grid>
#                          (one GPU; samples, profile and report tarred as <stage>.tgz)
# Each stage runs under its own timeout and the next one runs whatever happened.
# NVLink multicast stays off (KINDS.md): NCCL_NVLS_ENABLE=0 and friends are exported here.
set -u
OUTD=${OUTDIR:-${OUT:-/tmp/out/large}}
mkdir -p "$OUTD"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
make -C native > "$OUTD/make.log" 2>&1 || stamp "native build failed (Triton probe used)"
nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,power.draw,power.limit \
  --format=csv > "$OUTD/smi.txt" 2>&1
summary=""
for spec in "$@"; do
  name=${spec%%:*}; lim=${spec##*:}
  t=$(date +%s)
  case $name in
    coll-*)
      nvidia-smi topo -m > "$OUTD/topo.txt" 2>&1
      nvidia-smi nvlink -s > "$OUTD/nvlink.txt" 2>&1
      timeout -k 5 "$lim" python3 -m calibrate.collectives --out "$OUTD/$name" \
        --suite "${name#coll-}" 2>&1 | tee "$OUTD/$name.log" | tail -60
      rc=${PIPESTATUS[0]}
      ;;
    tp*-*)
      tp=${name%%-*}; tp=${tp#tp}; grid=${name#*-}
      timeout -k 5 "$lim" python3 -m calibrate calibrate --gpu h200 --model llama-3.1-70b \
        --tp "$tp" --grid "$grid" --out "/tmp/$name" --no-install 2>&1 \
        | grep -v '^\s*$' > "$OUTD/$name.log"
      rc=${PIPESTATUS[0]}
      tail -25 "$OUTD/$name.log"
      tar czf "$OUTD/$name.tgz" -C /tmp "$name"
      ;;
    *) stamp "unknown stage $name"; rc=2 ;;
  esac
  summary="$summary\n$name rc=$rc took=$(( $(date +%s) - t ))s"
  stamp "$name done rc=$rc"
done
echo -e "== large summary ==$summary"

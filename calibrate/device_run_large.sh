#!/bin/bash
# Issue 13 device stages (Llama-3.1-70B TP shards and NCCL collectives), run from a copy of
# the repository on the device: `OUTDIR=DIR bash calibrate/device_run_large.sh STAGE:SECONDS...`
#   coll-smoke, coll-full  python3 -m calibrate.collectives on every visible GPU (>= 2)
#   warm                   compile the flashinfer JIT modules in parallel, save the cache
#   probe<N>               calibrate.shard_probe for the TP-N shard, retried without each
#                          component that hangs (<= 4 tries); the components left out are
#                          written to $OUTD/skip-tp<N> and the calibrations below avoid them
#   tp<N>-<grid>           bulletsim calibrate --model llama-3.1-70b --tp N --grid <grid> with
#                          a 30 s per-sample watchdog, resumed past a hung sample until its
#                          time is up (samples, profile and report tarred as <stage>.tgz)
# Each stage runs under its own time limit and the next one runs whatever happened.
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

probe() {  # tp seconds
  local tp=$1 end=$(( $(date +%s) + $2 )) skip="" try hung comp
  for try in 1 2 3 4; do
    local left=$(( end - $(date +%s) ))
    [ $left -gt 10 ] || break
    timeout -k 5 $left python3 -m calibrate.shard_probe --tp "$tp" --skip "$skip" \
      --out "$OUTD/probe-tp$tp-$try" --stage-s 20 > "$OUTD/probe-tp$tp-$try.log" 2>&1
    rc=$?
    tail -4 "$OUTD/probe-tp$tp-$try.log"
    [ $rc = 0 ] && break
    hung=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('running') or '')" \
      "$OUTD/probe-tp$tp-$try/probe.json" 2>/dev/null)
    case $hung in
      gemm:*) comp=$(echo "$hung" | cut -d: -f2) ;;
      prefill_factories) comp=sdpa-all ;;
      prefill:*|decode:*) comp=${hung#*:} ;;
      *) comp=safe ;;
    esac
    stamp "probe tp$tp try $try: rc=$rc, stage '$hung' -> leave out $comp"
    skip="${skip:+$skip,}$comp"
    [ "$comp" = safe ] && break
  done
  echo "$skip" > "$OUTD/skip-tp$tp"
}

cal_args() {  # tp -> calibrate flags that avoid the components its probe left out
  local skip paths="" p
  skip=$(cat "$OUTD/skip-tp$1" 2>/dev/null || true)
  [ -z "$skip" ] && skip=$(cat "$OUTD"/skip-tp* 2>/dev/null | head -1)
  case ",$skip," in *,safe,*)
    echo "--gemm-paths cublas,triton-persistent --prefill-backend flashinfer --decode-backend triton-splitk"
    return ;;
  esac
  for p in cublas cublaslt-sm-target triton-persistent; do
    case ",$skip," in *,$p,*) ;; *) paths="${paths:+$paths,}$p" ;; esac
  done
  echo -n "--gemm-paths $paths"
  case ",$skip," in *,flashinfer-fa3,*|*,flashinfer-fa2,*) echo -n " --prefill-backend sdpa" ;; esac
  case ",$skip," in *,sdpa-*) echo -n " --prefill-backend flashinfer" ;; esac
  for p in flashinfer-tc flashinfer-cc triton-splitk sdpa-gather; do
    case ",$skip," in *,$p,*) local dec_skip=1 ;; esac
  done
  if [ -n "${dec_skip:-}" ]; then
    for p in flashinfer-tc triton-splitk flashinfer-cc sdpa-gather; do
      case ",$skip," in *,$p,*) ;; *) echo -n " --decode-backend $p"; break ;; esac
    done
  fi
  echo
}

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
    warm)
      # flashinfer JIT modules compiled in parallel (R3: the TP-8 sweep spent its first
      # ~90 s compiling the ragged prefill module the restored cache did not cover), then
      # the cache saved as $OUTD/fi_cache.tgz.part* for later rounds
      for w in fa3 fa2 tc cc; do
        timeout -k 5 "$lim" python3 -m calibrate.kernel_bench --warm $w > "$OUTD/warm_$w.log" 2>&1 &
      done
      wait; rc=0
      tail -n 2 "$OUTD"/warm_*.log
      (cd ~ && tar czf - .cache/flashinfer) | split -b 15M - "$OUTD/fi_cache.tgz.part"
      ;;
    probe*)
      probe "${name#probe}" "$lim"; rc=0
      stamp "skip-tp${name#probe}: $(cat "$OUTD/skip-tp${name#probe}")"
      ;;
    tp*-*)
      tp=${name%%-*}; tp=${tp#tp}; grid=${name#*-}
      args=$(cal_args "$tp")
      stamp "$name: calibrate $args"
      end=$(( $(date +%s) + lim ))
      while :; do
        left=$(( end - $(date +%s) ))
        [ $left -gt 15 ] || { rc=124; break; }
        timeout -k 5 $left python3 -m calibrate calibrate --gpu h200 --model llama-3.1-70b \
          --tp "$tp" --grid "$grid" --out "/tmp/$name" --no-install --watchdog-s 30 $args \
          >> "$OUTD/$name.log" 2>&1
        rc=$?
        [ $rc = 3 ] || break  # 3: the watchdog ended a hung sample; resume past it
        stamp "$name: watchdog exit, resuming"
      done
      grep -v '^\s*$' "$OUTD/$name.log" | tail -12
      tar czf "$OUTD/$name.tgz" -C /tmp "$name"
      ;;
    *) stamp "unknown stage $name"; rc=2 ;;
  esac
  summary="$summary\n$name rc=$rc took=$(( $(date +%s) - t ))s"
  stamp "$name done rc=$rc"
done
echo -e "== large summary ==$summary"

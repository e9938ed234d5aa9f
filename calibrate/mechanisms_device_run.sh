#!/bin/bash
# Device run of the mechanism comparison (issue 16): libsmctrl TPC masks and MPS beside green
# contexts. Run from a copy of the repository whose parent holds the user's libsmctrl checkout
# (../.libsmctrl-src, or LIBSMCTRL_SRC=PATH) and, for the calibration, ../.whl + ../.ficache
# (see calibrate/NOTES.md); `--help` prints the stages and variables:
#   bash calibrate/mechanisms_device_run.sh STAGE...     (OUTDIR=... for the results)
# Stages (each part in its own `timeout`ed process; a hang or failure moves on to the next):
#   masks   build libsmctrl, %smid self-test, CUDA graph under a mask, re-mask cost (~20 s)
#   gemm    masked GEMMs under the watchdog, hangs recorded                    (<= 60 s)
#   calib   bulletsim calibrate --mechanism libsmctrl --grid mechanisms, resumed past hangs
#           within CALIB_S seconds (default 165)
#   mps     MPS smoke (two configurations); mps-table: the MPS co-run table (<= 85 s);
#           mps-rerun: percentage + mask, and mask only, again (<= 45 s)
# MPS stages need the GPU alone. The MPS daemon is always sent `quit` (trap on EXIT).
set -u
STAGES="masks gemm calib mps mps-table mps-rerun"
usage() {
  cat <<USAGE
usage: bash calibrate/mechanisms_device_run.sh STAGE...   (from the repository root, on the GPU)
stages: masks | gemm | calib | mps | mps-table | mps-rerun  (see the header of this script)
environment:
  OUTDIR         where results and logs go (default /tmp/out/smctrl)
  LIBSMCTRL_SRC  your libsmctrl checkout, built once into /tmp/smctrl-libsmctrl
                 (default ../.libsmctrl-src, beside the repository)
  GEMM_S, CALIB_S  time limits of the gemm and calib stages, seconds
USAGE
}
[ $# -gt 0 ] || { usage >&2; exit 2; }
for stage in "$@"; do  # every argument checked before anything is built or started
  case $stage in
    -h|--help) usage; exit 0 ;;
    masks|gemm|calib|mps|mps-table|mps-rerun) ;;
    *) echo "error: unknown stage '$stage'; valid: $STAGES (or --help)" >&2; exit 2 ;;
  esac
done
OUTDIR=${OUTDIR:-/tmp/out/smctrl}
mkdir -p "$OUTDIR"
exec > >(tee -a "$OUTDIR/log.txt") 2>&1
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
LIBDIR=/tmp/smctrl-libsmctrl
export LIBSMCTRL_PATH=$LIBDIR/libsmctrl.so
SRC=${LIBSMCTRL_SRC:-../.libsmctrl-src}

setup() {  # the libsmctrl stages stop here (exit 2) when the library cannot be built
  if [ ! -f "$LIBSMCTRL_PATH" ]; then
    if timeout 60 bash native/build_libsmctrl.sh "$SRC" --out "$LIBDIR"; then
      stamp "libsmctrl built"
    elif [[ " $* " =~ \ (masks|gemm|calib)\  ]]; then
      stamp "error: libsmctrl build from $SRC failed (see above); the masks, gemm and calib" \
        "stages need it: give your checkout as LIBSMCTRL_SRC=PATH"
      exit 2
    fi
  fi
  cp "$LIBDIR"/libsmctrl.json "$LIBDIR"/build.log "$OUTDIR/" 2>/dev/null
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.draw,compute_mode \
    --format=csv > "$OUTDIR/smi.txt" 2>&1
  [ -f native/build/libbulletsim_native.so ] ||
    timeout 60 make -C native > "$OUTDIR/make_native.log" 2>&1 || stamp "native probe build failed"
  stamp "setup: $(tail -1 "$OUTDIR/smi.txt")"
}

part() {  # part NAME SECONDS CMD...: run CMD under timeout, log its exit code
  local name=$1 secs=$2; shift 2
  stamp "start $name"
  timeout -k 5 "$secs" "$@" 2>&1 | tee "$OUTDIR/$name.log" | grep -v "^\s*$" | tail -40
  local rc=${PIPESTATUS[0]}
  echo "$name $rc" >> "$OUTDIR/exit_codes.txt"
  stamp "end $name (exit $rc)"
}

mps_guard() {  # once per run: one folder for every MPS stage, removed on exit
  [ -n "${MPSDIR:-}" ] && return
  MPSDIR=$(mktemp -d /tmp/bulletsim-mps-XXXXXX)
  # On any exit: kill the workers the controller started (by pid), quit the daemon, keep its
  # log, remove the folder.
  trap 'for p in $(cat "$MPSDIR/workers.pids" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    echo quit | CUDA_MPS_PIPE_DIRECTORY=$MPSDIR/pipe CUDA_MPS_LOG_DIRECTORY=$MPSDIR/log \
    timeout 15 nvidia-cuda-mps-control >/dev/null 2>&1
    cp -r "$MPSDIR/log" "$OUTDIR/mps_log" 2>/dev/null; rm -rf "$MPSDIR"' EXIT
}

setup "$@"
for stage in "$@"; do
  case $stage in
    masks)
      part selftest 25 python3 -m calibrate.libsmctrl_check selftest --out "$OUTDIR" --watchdog-s 10
      part graph 20 python3 -m calibrate.libsmctrl_check graph --out "$OUTDIR" --watchdog-s 10
      part remask 15 python3 -m calibrate.libsmctrl_check remask --out "$OUTDIR"
      ;;
    gemm)
      part masked_gemm "${GEMM_S:-58}" python3 -m calibrate.masked_gemm --out "$OUTDIR/gemm" \
        --watchdog-s 5 --max-restarts 8
      ;;
    calib)
      python3 -c "import flashinfer" 2>/dev/null || python3 -m pip install -q --no-index \
        --no-deps --no-compile --no-cache-dir --target /tmp/site ../.whl/apache_tvm_ffi*.whl \
        ../.whl/flashinfer_python*.whl 2>/dev/null
      export PYTHONPATH=$PYTHONPATH:/tmp/site
      [ -d ~/.cache/flashinfer ] || { [ -f ../.ficache/fi_cache.tgz ] && tar xzf ../.ficache/fi_cache.tgz -C ~; }
      if [ -f resume/samples.jsonl ] && [ ! -f /tmp/calib-libsmctrl/samples.jsonl ]; then
        mkdir -p /tmp/calib-libsmctrl && cp resume/samples.jsonl /tmp/calib-libsmctrl/ &&
          stamp "resuming from $(wc -l < resume/samples.jsonl) sample lines of an earlier round"
      fi
      end=$(( $(date +%s) + ${CALIB_S:-165} ))
      for attempt in 1 2 3 4 5 6; do  # a watchdog exit (3) resumes past the hung sample
        left=$(( end - $(date +%s) )); [ $left -gt 15 ] || break
        part "calib$attempt" $left python3 -m calibrate calibrate --gpu h200 \
          --mechanism libsmctrl --grid mechanisms --out /tmp/calib-libsmctrl --no-install
        [ "$(tail -1 "$OUTDIR/exit_codes.txt" | cut -d' ' -f2)" = 3 ] || break
      done
      tar czf "$OUTDIR/calib-libsmctrl.tgz" -C /tmp calib-libsmctrl
      ;;
    mps|mps-table|mps-rerun)
      mps_guard
      sel=(--suite smoke); dur=1; secs=42
      [ "$stage" = mps-table ] && { sel=(--suite table); dur=1.5; secs=85; }
      [ "$stage" = mps-rerun ] && { sel=(--configs mps-pct-mask,mps-mask); dur=1.5; secs=45; }
      part "$stage" $secs python3 -m calibrate.mps_corun --out "$OUTDIR/$stage" "${sel[@]}" \
        --duration-s $dur --timeout-s 30 --mps-dir "$MPSDIR"
      ;;
  esac
done
stamp "summary"
cat "$OUTDIR/exit_codes.txt" 2>/dev/null
grep -h -E "^selftest|^graph under|^masked GEMMs|^remask" "$OUTDIR"/*.log "$OUTDIR"/gemm/*.log 2>/dev/null

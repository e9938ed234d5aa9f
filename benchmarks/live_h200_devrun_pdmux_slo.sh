#!/usr/bin/env bash
# Issue 17: pdmux-slo (the PD-Multiplexing paper's SLO-aware split, not mainline SGLang) live at
# the loads of the committed runs (results/live-h200/runs): splitwise 19.0/30.4/38.0 and
# sharegpt 38.1/60.9/76.1 req/s, 500 requests each, in one process (one set of graphs).
# SUITE=full (default, ~180 s, runs part cut at 205 s) | splitwise (~120 s, 140) |
# sharegpt (~85 s, 100) | smoke (n=60, ~50 s, 80). Expected times from the pdmux runs of R2.
# Copied to devrun.sh at the root of the tree the lead runs; results under $OUTDIR/$SUITE-pdmux-slo.
cd "$(dirname "$0")"; [ -d bulletsim ] || cd ..
SUITE=${SUITE:-full}
case "$SUITE" in
  full) T=205 ;; splitwise) T=140 ;; sharegpt) T=100 ;; smoke) T=80 ;;
  *) echo "unknown SUITE=$SUITE; valid: full splitwise sharegpt smoke"; exit 2 ;;
esac
SUITE=$SUITE PARTS=runs POLICIES=pdmux-slo T_RUNS_OVERRIDE=${T_RUNS_OVERRIDE:-$T} \
  exec bash benchmarks/live_h200_devrun.sh

#!/bin/sh
# Copy one device round's outputs (`/work/devout/<round>/large`) into results/large-models/device/
# in the form regenerate.sh reads: the NCCL run, and per TP degree the samples (parquet), the
# run's meta.json and kernel choices, and the probe's stage times. Usage, from the repository
# root:  sh results/large-models/ingest.sh /work/devout/R2/large [R2]
set -eu
usage="usage: sh results/large-models/ingest.sh ROUND_OUTPUT_DIR [ROUND_NAME, default R2]"
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "$usage" >&2; exit 2
fi
SRC=$1
ROUND=${2:-R2}
D=results/large-models/device
if [ ! -d "$SRC" ]; then
  echo "error: $SRC is not a folder (a device round's output, e.g. /work/devout/R2/large)" >&2
  exit 2
fi
# what a round writes that this copies: without any of it there is nothing to ingest
found=$(ls -d "$SRC"/coll-full/collectives.json "$SRC"/probe-tp*/probe.json "$SRC"/tp*-*.tgz \
  "$SRC"/topo.txt "$SRC"/nvlink.txt "$SRC"/smi.txt "$SRC"/log_multi.txt "$SRC"/log_single.txt \
  2>/dev/null | wc -l)
if [ "$found" -eq 0 ]; then
  echo "error: $SRC holds no round output (coll-full/collectives.json, probe-tp*/probe.json," \
    "tp*-*.tgz or the topo/nvlink/smi/log_*.txt files); nothing copied" >&2
  exit 2
fi
mkdir -p "$D"
for f in topo.txt nvlink.txt smi.txt log_multi.txt log_single.txt; do
  [ -f "$SRC/$f" ] && cp "$SRC/$f" "$D/$ROUND-$f"
done
if [ -f "$SRC/coll-full/collectives.json" ]; then
  cp "$SRC/coll-full/collectives.json" "$D/collectives.json"
  cp "$SRC/coll-full.log" "$D/$ROUND-collectives.log"
fi
for p in "$SRC"/probe-tp*; do
  [ -f "$p/probe.json" ] && cp "$p/probe.json" "$D/$ROUND-$(basename "$p").json"
  [ -f "$p.log" ] && cp "$p.log" "$D/$ROUND-$(basename "$p").log"
done
for t in "$SRC"/tp*-*.tgz; do
  [ -f "$t" ] || continue
  name=$(basename "$t" .tgz); tp=${name%%-*}; tp=${tp#tp}
  tmp=$(mktemp -d); tar xzf "$t" -C "$tmp"
  out="$D/tp$tp"; mkdir -p "$out"
  python -c "import sys; from calibrate.samples import load_samples, to_parquet; \
to_parquet(load_samples(sys.argv[1]), sys.argv[2])" "$tmp/$name/samples.jsonl" "$out/samples.parquet"
  for f in meta.json kernel_choices.json report.md; do
    [ -f "$tmp/$name/$f" ] && cp "$tmp/$name/$f" "$out/$f"
  done
  # a sweep cut short by the round's limit wrote no meta.json: state what is known
  [ -f "$out/meta.json" ] || python -c "import json, sys; from calibrate.run import TIMING_METHOD; \
json.dump({'gpu': 'h200', 'model': 'llama-3.1-70b', 'tp': int(sys.argv[2]), 'kind': 'measured', \
'num_sms': 132, 'mechanism': 'green-ctx', 'granularity_sms': 8, 'timing_method': TIMING_METHOD, \
'date': sys.argv[3], 'grid': sys.argv[4], 'note': 'sweep cut short by the device round time \
limit: meta rebuilt from the stage command (calibrate/device_run_large.sh); the kernels chosen \
are not recorded', 'measured_vs_derived': 'measured'}, open(sys.argv[1], 'w'), indent=1)" \
    "$out/meta.json" "$tp" "$(date -u -r "$t" +%FT%TZ)" "${name#*-}"
  cp "$SRC/$name.log" "$out/$ROUND-calibrate.log" 2>/dev/null || true
  rm -rf "$tmp"
done
ls -R "$D" | head -40

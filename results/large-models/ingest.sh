#!/bin/sh
# Copy one device round's outputs (`/work/devout/<round>/large`) into results/large-models/device/
# in the form regenerate.sh reads: the NCCL run, and per TP degree the samples (parquet), the
# run's meta.json and kernel choices, and the probe's stage times. Usage, from the repository
# root:  sh results/large-models/ingest.sh /work/devout/R2/large [R2]
#
# Never overwrites a file it did not write: everything is staged first, and a file already in
# device/ is replaced only when INGESTED.sha256 there (this script's record of what it wrote)
# lists it with its current content; otherwise one error line and nothing is copied. Each file
# is copied to a hidden sibling and renamed into place.
set -eu
usage="usage: sh results/large-models/ingest.sh ROUND_OUTPUT_DIR [ROUND_NAME, default R2]"
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "$usage" >&2; exit 2
fi
SRC=$1
ROUND=${2:-R2}
D=results/large-models/device
MANIFEST=INGESTED.sha256  # in $D: "sha256  path" lines (sha256sum's format) of what it wrote
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
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# 1. stage every file this round gives, under its path relative to $D
for f in topo.txt nvlink.txt smi.txt log_multi.txt log_single.txt; do
  [ -f "$SRC/$f" ] && cp "$SRC/$f" "$stage/$ROUND-$f"
done
if [ -f "$SRC/coll-full/collectives.json" ]; then
  cp "$SRC/coll-full/collectives.json" "$stage/collectives.json"
  cp "$SRC/coll-full.log" "$stage/$ROUND-collectives.log"
fi
for p in "$SRC"/probe-tp*; do
  [ -f "$p/probe.json" ] && cp "$p/probe.json" "$stage/$ROUND-$(basename "$p").json"
  [ -f "$p.log" ] && cp "$p.log" "$stage/$ROUND-$(basename "$p").log"
done
for t in "$SRC"/tp*-*.tgz; do
  [ -f "$t" ] || continue
  name=$(basename "$t" .tgz); tp=${name%%-*}; tp=${tp#tp}
  tmp="$stage/.x-$name"; mkdir -p "$tmp"; tar xzf "$t" -C "$tmp"
  out="$stage/tp$tp"; mkdir -p "$out"
  python -c "import sys; from calibrate.samples import load_samples, to_parquet; \
to_parquet(load_samples(sys.argv[1]), sys.argv[2])" "$tmp/$name/samples.jsonl" "$out/samples.parquet"
  for f in meta.json kernel_choices.json report.md; do
    [ -f "$tmp/$name/$f" ] && cp "$tmp/$name/$f" "$out/$f"
  done
  # a sweep cut short by the round's limit wrote no meta.json: state what is known (unless an
  # earlier round's meta.json is there)
  [ -f "$out/meta.json" ] || [ -f "$D/tp$tp/meta.json" ] || python -c "import json, sys; \
from calibrate.run import TIMING_METHOD; \
json.dump({'gpu': 'h200', 'model': 'llama-3.1-70b', 'tp': int(sys.argv[2]), 'kind': 'measured', \
'num_sms': 132, 'mechanism': 'green-ctx', 'granularity_sms': 8, 'timing_method': TIMING_METHOD, \
'date': sys.argv[3], 'grid': sys.argv[4], 'note': 'sweep cut short by the device round time \
limit: meta rebuilt from the stage command (calibrate/device_run_large.sh); the kernels chosen \
are not recorded', 'measured_vs_derived': 'measured'}, open(sys.argv[1], 'w'), indent=1)" \
    "$out/meta.json" "$tp" "$(date -u -r "$t" +%FT%TZ)" "${name#*-}"
  [ -f "$SRC/$name.log" ] && cp "$SRC/$name.log" "$out/$ROUND-calibrate.log"
  rm -rf "$tmp"
done
files=$(cd "$stage" && find . -type f | sed 's|^\./||' | sort)
# 2. refuse (before copying anything) to replace a file this script did not write
for rel in $files; do
  dst="$D/$rel"
  if [ -L "$dst" ] || { [ -e "$dst" ] && [ ! -f "$dst" ]; }; then
    echo "error: $dst exists and is not a regular file; move it away (nothing copied)" >&2
    exit 2
  fi
  [ -f "$dst" ] || continue
  line=$(cd "$D" && sha256sum "$rel")
  if [ ! -f "$D/$MANIFEST" ] || ! grep -qxF "$line" "$D/$MANIFEST"; then
    echo "error: $dst exists and was not written by ingest.sh (not in $D/$MANIFEST with its" \
      "current content); move it away or ingest into a clean tree (nothing copied)" >&2
    exit 2
  fi
done
# 3. copy (each to a hidden sibling, then renamed) and record what was written
mkdir -p "$D"
for rel in $files; do
  dst="$D/$rel"; mkdir -p "$(dirname "$dst")"
  cp "$stage/$rel" "$(dirname "$dst")/.$(basename "$dst").tmp"
  mv "$(dirname "$dst")/.$(basename "$dst").tmp" "$dst"
done
{
  [ -f "$D/$MANIFEST" ] && cat "$D/$MANIFEST"
  for rel in $files; do (cd "$D" && sha256sum "$rel"); done
} | awk '{ last[$2] = $0; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
  END { for (i = 1; i <= n; i++) print last[order[i]] }' | sort -k2 > "$D/.$MANIFEST.tmp"
mv "$D/.$MANIFEST.tmp" "$D/$MANIFEST"
ls -R "$D" | head -40

#!/bin/bash
# Build YOUR libsmctrl checkout for the CUDA installed here (libsmctrl is not vendored: it has
# no licence, so bulletsim never copies its source; you point this script at your checkout).
#
#   bash native/build_libsmctrl.sh PATH/TO/libsmctrl [--out DIR]
#
# Writes DIR/libsmctrl.so, DIR/libsmctrl.json and DIR/build.log (default DIR:
# native/build/libsmctrl), never anything inside the checkout, and never over a file it did
# not write: its manifest holds `"built_by": "bulletsim native/build_libsmctrl.sh"` and the
# library's sha256, its log starts with `# bulletsim native/build_libsmctrl.sh`; any other
# file of those names in DIR stops the build. The manifest records the source's sha256, the
# CUDA toolkit (nvcc) it was built with and the driver versions (cuDriverGetVersion values)
# whose stream struct the checkout knows on this CPU architecture; `bulletsim.gpu.libsmctrl`
# refuses to set a stream mask on any other driver, because libsmctrl itself exits there.
# CUDA_HOME, when set, must be the toolkit (holding include/cuda.h); NVCC picks the compiler.
# Then: `export LIBSMCTRL_PATH='DIR/libsmctrl.so'` (or `--libsmctrl DIR/libsmctrl.so`).
# Errors (bad arguments, not a checkout, no nvcc, no libcuda) are one line and exit code 2; a
# failed build removes the folders it created (unless they hold the failed compile's log).
set -u
die() { echo "error: $*" >&2; exit 2; }
usage="usage: bash native/build_libsmctrl.sh LIBSMCTRL_CHECKOUT [--out DIR]"
marker="bulletsim native/build_libsmctrl.sh"

src="" out="" out_given=false
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a directory; $usage"; out="$2"; out_given=true; shift 2 ;;
    --out=*) out="${1#--out=}"; out_given=true; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) die "unknown option $1; valid: --out DIR; $usage" ;;
    *) [ -z "$src" ] || die "one checkout path expected, got also '$1'; $usage"; src="$1"; shift ;;
  esac
done
[ -n "$src" ] || die "no libsmctrl checkout given; $usage"
if $out_given && [ -z "$out" ]; then
  die "--out is empty; give a directory, e.g. --out native/build/libsmctrl (the default)"
fi
[ -e "$src" ] || die "libsmctrl checkout not found: $src"
[ -d "$src" ] || die "not a directory: $src (give the libsmctrl checkout's folder)"
src=$(cd "$src" && pwd -P)
for f in libsmctrl.c libsmctrl.h; do
  [ -f "$src/$f" ] || die "not a libsmctrl checkout (no $f): $src"
done
grep -q "libsmctrl_set_stream_mask" "$src/libsmctrl.c" ||
  die "not a libsmctrl checkout (libsmctrl.c has no libsmctrl_set_stream_mask): $src"

here=$(cd "$(dirname "$0")" && pwd -P)
out=$(realpath -m "${out:-$here/build/libsmctrl}")
case "$out/" in  # decided before anything is created
  "$src"/*) die "--out $out is inside the checkout $src; the checkout is never written to" ;;
esac
[ ! -e "$out" ] || [ -d "$out" ] || die "--out $out is a file; give a directory (new, or one this script built)"

# Our own files in DIR only: the manifest by its built_by line, the library by the sha256 the
# manifest recorded, the log by its first line.
if [ -e "$out/libsmctrl.json" ] && ! grep -qx " \"built_by\": \"$marker\"," "$out/libsmctrl.json"; then
  die "$out/libsmctrl.json exists and was not built by this script (no \"built_by\": \"$marker\"); choose another --out"
fi
if [ -e "$out/libsmctrl.so" ]; then
  want=$(sed -n 's/^ "libsmctrl_so_sha256": "\([0-9a-f]*\)",$/\1/p' "$out/libsmctrl.json" 2>/dev/null)
  have=$(sha256sum "$out/libsmctrl.so" 2>/dev/null | cut -d' ' -f1)
  [ -n "$want" ] && [ "$want" = "$have" ] ||
    die "$out/libsmctrl.so exists and was not built by this script (no matching sha256 in its libsmctrl.json); choose another --out"
fi
if [ -e "$out/build.log" ] && [ "$(head -1 "$out/build.log" 2>/dev/null)" != "# $marker" ]; then
  die "$out/build.log exists and was not written by this script; choose another --out"
fi

nvcc=${NVCC:-$(command -v nvcc || true)}
[ -n "$nvcc" ] && [ -x "$nvcc" ] || die "nvcc not found (put the CUDA toolkit's bin on PATH or set NVCC)"
cuda_ver=$("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
[ -n "$cuda_ver" ] || die "$nvcc --version did not report a CUDA release"
# The toolkit's headers: $CUDA_HOME when set (then it must hold them), else next to nvcc's
# real binary (nvcc may be a wrapper script on PATH), else /usr/local/cuda.
if [ -n "${CUDA_HOME:-}" ]; then
  [ -d "$CUDA_HOME" ] ||
    die "CUDA_HOME=$CUDA_HOME does not exist; set it to the CUDA toolkit (the folder with include/cuda.h) or unset it"
  [ -f "$CUDA_HOME/include/cuda.h" ] ||
    die "CUDA_HOME=$CUDA_HOME has no include/cuda.h; set it to the CUDA toolkit or unset it"
  cuda_home=$CUDA_HOME
else
  cuda_home=""
  for c in "$(dirname "$(dirname "$(readlink -f "$nvcc")")")" /usr/local/cuda; do
    [ -f "$c/include/cuda.h" ] && { cuda_home=$c; break; }
  done
  [ -n "$cuda_home" ] || die "no cuda.h beside $nvcc (set CUDA_HOME to the CUDA toolkit)"
fi
# libsmctrl calls the driver API: link the driver library (or the toolkit's link stub). An
# array, so a toolkit path with spaces stays one argument.
link=()
for d in "$cuda_home/lib64/stubs" "$cuda_home/targets/x86_64-linux/lib/stubs"; do
  [ -f "$d/libcuda.so" ] && { link=("-L$d" -lcuda); break; }
done
if [ ${#link[@]} -eq 0 ]; then
  drv=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 .*x86-64/ {print $NF; exit}')
  [ -n "$drv" ] || drv=$(ls /usr/lib/x86_64-linux-gnu/libcuda.so.1 /usr/lib64/libcuda.so.1 2>/dev/null | head -1)
  [ -n "$drv" ] || die "no libcuda (NVIDIA driver) and no $cuda_home/lib64/stubs/libcuda.so to link against"
  link=(-Wl,--no-as-needed "$drv")
fi

# Driver versions the checkout's stream-mask switch knows on this architecture.
arch=$(uname -m)
versions=$(awk -v arch="$arch" '
  /void libsmctrl_set_stream_mask_ext/ {infn=1}
  infn && /^#if __x86_64__/ {blk=(arch=="x86_64")}
  infn && /^#elif __aarch64__/ {blk=(arch=="aarch64")}
  infn && /^#endif/ {blk=0}
  infn && blk && match($0, /case [0-9]+:/) {v=substr($0, RSTART+5, RLENGTH-6); print v}
  infn && /^}/ {infn=0}' "$src/libsmctrl.c" | sort -un | paste -sd, -)
[ -n "$versions" ] || die "could not read the stream-mask driver versions from $src/libsmctrl.c for $arch"

# Everything is checked: create DIR, remembering the topmost folder made, so that a failure
# removes what this run created (only while empty) and nothing else.
made=""
if [ ! -d "$out" ]; then
  made=$out
  while [ ! -e "$(dirname "$made")" ]; do made=$(dirname "$made"); done
  mkdir -p "$out" 2>/dev/null || die "cannot create output directory: $out"
fi
tmp=""
cleanup() {
  [ -z "$tmp" ] || rm -f "$tmp" "$tmp.json" "$tmp.log"
  if [ -n "$made" ]; then
    d=$out
    while rmdir "$d" 2>/dev/null && [ "$d" != "$made" ]; do d=$(dirname "$d"); done
  fi
}
trap cleanup EXIT
tmp=$(mktemp "$out/.libsmctrl.so.XXXXXX") || die "cannot write in $out"
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
{
  echo "# $marker"
  printf '#'; printf ' %q' "$nvcc" -x c -O2 -shared -Xcompiler -fPIC "-I$src" "-I$cuda_home/include" \
    "$src/libsmctrl.c" "${link[@]}"; echo
} > "$tmp.log"
# libsmctrl.c is GNU C (typeof), so nvcc compiles it as C with its host compiler.
if ! "$nvcc" -x c -O2 -shared -Xcompiler -fPIC -I"$src" -I"$cuda_home/include" \
     -o "$tmp" "$src/libsmctrl.c" "${link[@]}" >> "$tmp.log" 2>&1; then
  mv -f "$tmp.log" "$out/build.log"
  made=""  # the folder now holds the log the message points to
  die "compiling $src/libsmctrl.c failed; see $out/build.log"
fi
sha_c=$(sha256sum "$src/libsmctrl.c" | cut -c1-16)
sha_h=$(sha256sum "$src/libsmctrl.h" | cut -c1-16)
sha_so=$(sha256sum "$tmp" | cut -d' ' -f1)
has_ext=false
grep -q "libsmctrl_set_stream_mask_ext" "$src/libsmctrl.h" && has_ext=true
cat > "$tmp.json" <<EOF
{
 "built_by": "$marker",
 "source": $(json_str "$src"),
 "libsmctrl_c_sha256_16": "$sha_c",
 "libsmctrl_h_sha256_16": "$sha_h",
 "libsmctrl_so_sha256": "$sha_so",
 "nvcc": $(json_str "$nvcc"),
 "cuda_toolkit": "$cuda_ver",
 "cuda_home": $(json_str "$cuda_home"),
 "arch": "$arch",
 "link": $(json_str "${link[*]}"),
 "has_stream_mask_ext": $has_ext,
 "stream_mask_driver_versions": [$versions],
 "date_utc": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
chmod 755 "$tmp"
# The manifest first: a crash between the renames leaves a manifest whose sha256 the old
# library does not match, so the next run refuses instead of trusting a stale pair.
mv -f "$tmp.json" "$out/libsmctrl.json" && mv -f "$tmp" "$out/libsmctrl.so" &&
  mv -f "$tmp.log" "$out/build.log" || die "cannot move the build into $out"
made=""
trap - EXIT
quoted="'${out//\'/\'\\\'\'}/libsmctrl.so'"
echo "built $out/libsmctrl.so (CUDA $cuda_ver; stream masks for driver versions $versions)"
echo "use it: export LIBSMCTRL_PATH=$quoted"

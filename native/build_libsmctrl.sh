#!/bin/bash
# Build YOUR libsmctrl checkout for the CUDA installed here (libsmctrl is not vendored: it has
# no licence, so bulletsim never copies its source; you point this script at your checkout).
#
#   bash native/build_libsmctrl.sh PATH/TO/libsmctrl [--out DIR]
#
# Writes DIR/libsmctrl.so and DIR/libsmctrl.json (default DIR: native/build/libsmctrl), never
# anything inside the checkout. The manifest records the source's sha256, the CUDA toolkit
# (nvcc) it was built with and the driver versions (cuDriverGetVersion values) whose stream
# struct the checkout knows on this CPU architecture; `bulletsim.gpu.libsmctrl` refuses to set
# a stream mask on any other driver, because libsmctrl itself exits the process there.
# Then: `export LIBSMCTRL_PATH=DIR/libsmctrl.so` (or `--libsmctrl DIR/libsmctrl.so`).
# Errors (bad arguments, not a checkout, no nvcc, no libcuda) are one line and exit code 2.
set -u
die() { echo "error: $*" >&2; exit 2; }
usage="usage: bash native/build_libsmctrl.sh LIBSMCTRL_CHECKOUT [--out DIR]"

src="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a directory; $usage"; out="$2"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) die "unknown option $1; valid: --out DIR; $usage" ;;
    *) [ -z "$src" ] || die "one checkout path expected, got also '$1'; $usage"; src="$1"; shift ;;
  esac
done
[ -n "$src" ] || die "no libsmctrl checkout given; $usage"
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
mkdir -p "$out" 2>/dev/null || die "cannot create output directory: $out"
if [ -e "$out/libsmctrl.so" ] && [ ! -e "$out/libsmctrl.json" ]; then
  die "$out/libsmctrl.so exists and was not built by this script (no libsmctrl.json); choose another --out"
fi

nvcc=${NVCC:-$(command -v nvcc || true)}
[ -n "$nvcc" ] && [ -x "$nvcc" ] || die "nvcc not found (put the CUDA toolkit's bin on PATH or set NVCC)"
cuda_ver=$("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
[ -n "$cuda_ver" ] || die "$nvcc --version did not report a CUDA release"
# The toolkit's headers: next to nvcc's real binary (nvcc may be a wrapper script on PATH).
cuda_home=""
for c in "${CUDA_HOME:-}" "$(dirname "$(dirname "$(readlink -f "$nvcc")")")" /usr/local/cuda; do
  [ -n "$c" ] && [ -f "$c/include/cuda.h" ] && { cuda_home=$c; break; }
done
[ -n "$cuda_home" ] || die "no cuda.h beside $nvcc (set CUDA_HOME to the CUDA toolkit)"
# libsmctrl calls the driver API: link the driver library (or the toolkit's link stub).
link=""
for d in "$cuda_home/lib64/stubs" "$cuda_home/targets/x86_64-linux/lib/stubs"; do
  [ -f "$d/libcuda.so" ] && { link="-L$d -lcuda"; break; }
done
if [ -z "$link" ]; then
  drv=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 .*x86-64/ {print $NF; exit}')
  [ -n "$drv" ] || drv=$(ls /usr/lib/x86_64-linux-gnu/libcuda.so.1 /usr/lib64/libcuda.so.1 2>/dev/null | head -1)
  [ -n "$drv" ] || die "no libcuda (NVIDIA driver) and no $cuda_home/lib64/stubs/libcuda.so to link against"
  link="-Wl,--no-as-needed $drv"
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

tmp=$(mktemp "$out/.libsmctrl.so.XXXXXX") || die "cannot write in $out"
trap 'rm -f "$tmp" "$tmp.json"' EXIT
# libsmctrl.c is GNU C (typeof), so nvcc compiles it as C with its host compiler.
if ! "$nvcc" -x c -O2 -shared -Xcompiler -fPIC -I"$src" -I"$cuda_home/include" \
     -o "$tmp" "$src/libsmctrl.c" $link > "$out/build.log" 2>&1; then
  die "compiling $src/libsmctrl.c failed; see $out/build.log"
fi
sha_c=$(sha256sum "$src/libsmctrl.c" | cut -c1-16)
sha_h=$(sha256sum "$src/libsmctrl.h" | cut -c1-16)
has_ext=false
grep -q "libsmctrl_set_stream_mask_ext" "$src/libsmctrl.h" && has_ext=true
cat > "$tmp.json" <<EOF
{
 "built_by": "bulletsim native/build_libsmctrl.sh",
 "source": "$src",
 "libsmctrl_c_sha256_16": "$sha_c",
 "libsmctrl_h_sha256_16": "$sha_h",
 "nvcc": "$nvcc",
 "cuda_toolkit": "$cuda_ver",
 "cuda_home": "$cuda_home",
 "arch": "$arch",
 "link": "$link",
 "has_stream_mask_ext": $has_ext,
 "stream_mask_driver_versions": [$versions],
 "date_utc": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
chmod 755 "$tmp"
mv -f "$tmp.json" "$out/libsmctrl.json" && mv -f "$tmp" "$out/libsmctrl.so"
trap - EXIT
echo "built $out/libsmctrl.so (CUDA $cuda_ver; stream masks for driver versions $versions)"
echo "use it: export LIBSMCTRL_PATH=$out/libsmctrl.so"

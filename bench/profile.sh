#!/usr/bin/env bash
# On the GPU host, after device_run.sh unpacked the binaries: profile one
# variant with ncu and dump its SASS. Usage: profile.sh D S CAUSAL [TILE]
# (see profile_one.py). Output under $OUT/profile-*.
set -u
OUT=${OUT:-/tmp/flashjit-out}
name=d$1-s$2-c$3${4:+-$(echo "$4" | tr , _)}
dump=/tmp/fj-dump-$name
rm -rf "$dump" && mkdir -p "$dump"
export FLASHJIT_LIBRARY=/tmp/fj/libflashjit.so FLASHJIT_DUMP_DIR=$dump FLASHJIT_CACHE_DIR=/tmp/fj-prof-cache-$name
python3 bench/profile_one.py "$@" || exit 1
ptx=$(find "$dump" -name '3-kernel.ptx' | head -1)
ptxas -arch=sm_90a -v "$ptx" -o /tmp/k.cubin 2> "$OUT/profile-$name-ptxas.txt"
cuobjdump -sass /tmp/k.cubin > /tmp/k.sass
# The cubin the runtime itself loaded (the driver's JIT, from the disk cache).
jit=$(find "$FLASHJIT_CACHE_DIR" -name kernel.cubin | head -1)
cuobjdump -sass "$jit" > /tmp/k-jit.sass 2>/dev/null || echo "no JIT cubin found in the cache"
{
  echo "SASS instruction counts (static): ptxas CLI / runtime JIT"
  for op in HGMMA WARPGROUP.ARRIVE WARPGROUP.DEPBAR 'BAR.SYNC' 'BAR.ARV' SYNCS MUFU.EX2 LDL STL F2FP UTMALDG; do
    printf '%-18s %s / %s\n' "$op" "$(grep -c "$op" /tmp/k.sass)" "$(grep -c "$op" /tmp/k-jit.sass)"
  done
  cat "$OUT/profile-$name-ptxas.txt"
} > "$OUT/profile-$name-sass-summary.txt"
xz -c /tmp/k-jit.sass > "$OUT/profile-$name-jit.sass.xz"
xz -c /tmp/k.sass > "$OUT/profile-$name.sass.xz"
ncu --kernel-name regex:flash_fwd --launch-skip 1 --launch-count 1 \
  --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
  --section LaunchStats --section Occupancy \
  --metrics sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active \
  python3 bench/profile_one.py "$@" > "$OUT/profile-$name-ncu.txt" 2>&1
echo "ncu exit $?"
cat "$OUT/profile-$name-sass-summary.txt"
grep -E "gmma|Duration|Stall|Issued|Warp Cycles|Registers|Throughput" "$OUT/profile-$name-ncu.txt" | head -40

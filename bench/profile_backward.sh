#!/usr/bin/env bash
# On the GPU host, after device_run.sh unpacked the binaries: ncu on the
# backward kernels of one shape (default tiles), one launch of each kernel
# after a warm-up pass. Usage: profile_backward.sh D S CAUSAL. Output under
# $OUT/profile-bwd-*.
set -u
OUT=${OUT:-/tmp/flashjit-out}
name=d$1-s$2-c$3
export FLASHJIT_LIBRARY=/tmp/fj/libflashjit.so FLASHJIT_CACHE_DIR=/tmp/fj-prof-cache-bwd-$name
python3 bench/profile_backward.py "$@" || exit 1 # compiles (and caches) the kernels
# Each pass launches the backward's kernels once; skip the first pass's.
kernels=$(( $1 > 128 ? 3 : 2 ))
ncu --kernel-name regex:flash_bwd --launch-skip "$kernels" --launch-count "$kernels" \
  --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
  --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy \
  --metrics sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active \
  python3 bench/profile_backward.py "$@" > "$OUT/profile-bwd-$name-ncu.txt" 2>&1
echo "ncu exit $?"
grep -E "flash_bwd|gmma|Duration|Stall|Issued Warp|Warp Cycles|Registers Per|Achieved Occupancy|Throughput|Shared Memory" \
  "$OUT/profile-bwd-$name-ncu.txt" | head -60

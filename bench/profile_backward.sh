#!/usr/bin/env bash
# On the GPU host, after device_run.sh unpacked the binaries: ncu on the
# backward kernels of one shape (the deterministic ones on default tiles;
# with a 4th argument the atomic-dQ backward on that key-block tile), one launch of each kernel after
# a warm-up pass, and the key-block kernel's per-SASS-line stall samples.
# Usage: profile_backward.sh D S CAUSAL [DKV_TILE]. Output under $OUT/profile-bwd-*.
set -u
OUT=${OUT:-/tmp/flashjit-out}
name=d$1-s$2-c$3${4:+-$(echo "$4" | tr , _)}
export FLASHJIT_LIBRARY=/tmp/fj/libflashjit.so FLASHJIT_CACHE_DIR=/tmp/fj-prof-cache-bwd-$name
python3 bench/profile_backward.py "$@" || exit 1 # compiles (and caches) the kernels
# Each pass launches the backward's kernels once; skip the first pass's
# (atomic: delta, key blocks, conversion; else dQ and key blocks, split above d = 128).
kernels=$(( $# > 3 ? 3 : ($1 > 128 ? 3 : 2) ))
ncu --kernel-name regex:flash_bwd --launch-skip "$kernels" --launch-count "$kernels" \
  --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
  --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy \
  --metrics sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,smsp__inst_executed_op_shared_st.sum \
  python3 bench/profile_backward.py "$@" > "$OUT/profile-bwd-$name-ncu.txt" 2>&1
echo "ncu exit $?"
grep -E "flash_bwd|gmma|Duration|Stall|Issued Warp|Warp Cycles|Registers Per|Achieved Occupancy|Throughput|Shared Memory|bank" \
  "$OUT/profile-bwd-$name-ncu.txt" | head -60
ncu --kernel-name regex:flash_bwd_dk --launch-skip 1 --launch-count 1 --section SourceCounters \
  --section WarpStateStats --page source --print-source sass --csv \
  python3 bench/profile_backward.py "$@" > /tmp/source-bwd-$name.csv 2> /tmp/source-bwd-$name.err
echo "ncu source exit $? ($(wc -l < /tmp/source-bwd-$name.csv) lines)"
xz -c /tmp/source-bwd-$name.csv > "$OUT/source-bwd-$name.csv.xz"

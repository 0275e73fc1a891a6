#!/usr/bin/env bash
# On the GPU host (after device_run.sh unpacked the binaries): per-SASS-line
# warp-stall samples of one variant, as CSV (ncu source page). Usage as
# profile.sh: D S CAUSAL [TILE]. Output: $OUT/source-*.csv.xz
set -u
OUT=${OUT:-/tmp/flashjit-out}
name=d$1-s$2-c$3${4:+-$(echo "$4" | tr , _)}
export FLASHJIT_LIBRARY=/tmp/fj/libflashjit.so FLASHJIT_CACHE_DIR=/tmp/fj-src-cache-$name
ncu --kernel-name regex:flash_fwd --launch-skip 1 --launch-count 1 --section SourceCounters \
  --section WarpStateStats --page source --print-source sass --csv \
  python3 bench/profile_one.py "$@" > /tmp/source-$name.csv 2> /tmp/source-$name.err
echo "ncu exit $? ($(wc -l < /tmp/source-$name.csv) lines)"
tail -3 /tmp/source-$name.err
xz -c /tmp/source-$name.csv > "$OUT/source-$name.csv.xz"

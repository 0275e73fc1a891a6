#!/usr/bin/env bash
# Everything the GPU host does in one call: unpack the carried binaries, run
# flash-run, the GPU tests, compute-sanitizer on small cases, and the benchmark
# against PyTorch SDPA. Logs go to $OUT.
#   bash bench/device_run.sh [bench args...]
set -u
OUT=${OUT:-/tmp/flashjit-out}
mkdir -p "$OUT" /tmp/fj
tar -xJf .carry/flashjit-bin.tar.xz -C /tmp/fj || exit 1
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/env.txt"
python3 -c 'import torch, triton; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version(), "triton", triton.__version__)' | tee -a "$OUT/env.txt"
nvcc --version | tail -2 | tee -a "$OUT/env.txt"

echo "== flash-run"
/tmp/fj/flash-run 2>&1 | tee "$OUT/flash-run.log"
echo "== GPU tests"
export FLASHJIT_REQUIRE_GPU=1
/tmp/fj/flashjit-gpu-tests ${GTEST_FILTER:+--gtest_filter=$GTEST_FILTER} > "$OUT/gpu-tests.log" 2>&1
echo "gpu tests exit $?"
grep -E "^\[  (FAILED|PASSED|SKIPPED) |tests ran|Failure|error" "$OUT/gpu-tests.log" | head -60
if [ -d /tmp/fj/tests-bundle ]; then
  echo "== kernels from bundles generated without a GPU, FLASHJIT_DISABLE_JIT=1"
  FLASHJIT_DISABLE_JIT=1 /tmp/fj/host_app --bundle /tmp/fj/host_app_bundle
  echo "host_app exit $?"
  FLASHJIT_DISABLE_JIT=1 /tmp/fj/host_app_embedded
  echo "host_app_embedded exit $?"
  FLASHJIT_BUNDLE=/tmp/fj/tests-bundle FLASHJIT_DISABLE_JIT=1 FLASHJIT_CACHE_DIR=/tmp/fj-empty-cache \
    /tmp/fj/flashjit-gpu-tests > "$OUT/gpu-tests-bundle.log" 2>&1
  echo "gpu tests from the bundle exit $?"
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure" "$OUT/gpu-tests-bundle.log" | head -30
fi
echo "== compute-sanitizer"
small='Grid/AttentionCorrectness.MatchesReference/*sq17_sk17*d40*:InvalidRequest.*'
for tool in memcheck racecheck synccheck; do
  echo "=== $tool" >> "$OUT/sanitizer.log"
  compute-sanitizer --tool $tool --error-exitcode 9 /tmp/fj/flashjit-gpu-tests \
    --gtest_filter="$small" > /tmp/sanitizer-$tool.log 2>&1
  rc=$?
  cat /tmp/sanitizer-$tool.log >> "$OUT/sanitizer.log"
  echo "$tool exit $rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/sanitizer-$tool.log | tail -1)"
done
if [ -n "${TUNE_ARGS:-}" ]; then
  echo "== flash-tune $TUNE_ARGS"
  /tmp/fj/flash-tune $TUNE_ARGS --quiet --out "$OUT/tune.md" > /tmp/tune.log 2>&1
  echo "flash-tune exit $?"
  tail -n 45 /tmp/tune.log
fi
[ "${SKIP_BENCH:-0}" = 1 ] && exit 0
echo "== benchmark"
cd bench && python3 bench_attention.py --lib /tmp/fj/libflashjit.so --out "$OUT/bench.md" "$@" 2>&1 | tail -n 80

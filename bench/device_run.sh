#!/usr/bin/env bash
# Everything the GPU host does in one call: unpack the carried binaries, then
# the stages named in STAGES (default: all) — flash-run, the GPU tests, the
# kernels from bundles made without a GPU, compute-sanitizer on small cases,
# flash-tune (TUNE_ARGS), the Python package's tests and example, and the
# benchmark against PyTorch's attention (arguments go to bench_attention.py),
# the forward+backward benchmark (BWD_ARGS go to bench_backward.py), the
# kernel times of a training step (profile-kernels, not in the default list:
# PROFILE_ARGS go to profile_kernels.py), the host time of a Python call
# (host-overhead, not in the default list: HOST_ARGS go to host_overhead.py), the
# variants benchmark (bench_variants.py), the user modifier benchmark
# (bench_user_modifiers.py), the dropout benchmark (bench_dropout.py) and the training check (TRAIN_ARGS go to examples/train_check.py).
# GTEST_FILTER and SANITIZE_FILTER narrow the GPU tests and the sanitized cases,
# PYTEST_K (a pytest -k expression) the Python tests; the block mask benchmark
# is bench_block_mask.py, the GQA decoding one bench_pack_gqa.py.
# Logs go to $OUT.
set -u
OUT=${OUT:-/tmp/flashjit-out}
STAGES=${STAGES:-"flash-run gpu-tests bundle sanitizer tune python bench bench-backward bench-variants bench-varlen bench-modifiers bench-block-mask bench-pack-gqa bench-dropout train"}
want() { [[ " $STAGES " == *" $1 "* ]]; }
mkdir -p "$OUT" /tmp/fj
tar -xJf .carry/flashjit-bin.tar.xz -C /tmp/fj || exit 1
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
export FLASHJIT_LIBRARY=/tmp/fj/libflashjit.so
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/env.txt"
python3 -c 'import torch, triton; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version(), "triton", triton.__version__)' | tee -a "$OUT/env.txt"
nvcc --version | tail -2 | tee -a "$OUT/env.txt"

if want flash-run; then
  echo "== flash-run"
  /tmp/fj/flash-run 2>&1 | tee "$OUT/flash-run.log"
fi
if want gpu-tests; then
  echo "== GPU tests"
  FLASHJIT_REQUIRE_GPU=1 timeout ${GPU_TESTS_TIMEOUT:-540} /tmp/fj/flashjit-gpu-tests --gtest_filter="${GTEST_FILTER:-*}" \
    > "$OUT/gpu-tests.log" 2>&1
  echo "gpu tests exit $?"
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure" "$OUT/gpu-tests.log" | head -60
fi
if want bundle && [ -d /tmp/fj/tests-bundle ]; then
  echo "== kernels from bundles generated without a GPU, FLASHJIT_DISABLE_JIT=1"
  FLASHJIT_DISABLE_JIT=1 /tmp/fj/host_app --bundle /tmp/fj/host_app_bundle
  echo "host_app exit $?"
  FLASHJIT_DISABLE_JIT=1 /tmp/fj/host_app_embedded
  echo "host_app_embedded exit $?"
  # The test bundle holds the plain grids' variants; the score-modifier,
  # user-modifier, varlen, dropout, block-mask and packed-GQA variants and
  # the atomic warp-specialized tile grid, the persistent key-block grid, the
  # causal many-heads forward tiles, the offset-outputs backward grid and
  # the backward modes test (softcap, a given dQ tile) are JIT-tested only (from this
  # bundle they fail with "has no variant for ...", never with another kernel).
  # BUNDLE_FILTER narrows this stage on its own.
  FLASHJIT_REQUIRE_GPU=1 FLASHJIT_BUNDLE=/tmp/fj/tests-bundle FLASHJIT_DISABLE_JIT=1 \
    FLASHJIT_CACHE_DIR=/tmp/fj-empty-cache /tmp/fj/flashjit-gpu-tests \
    --gtest_filter="${BUNDLE_FILTER:-${GTEST_FILTER:-*}}-*ScoreModifier*:*UserModifier*:*VariableLength*:*ValidPackedBatch*:*Dropout*:*BlockMask*:*PackedGqa*:*MaskModBlockLists*:WarpSpecializedTiles/*:AtomicWarpSpecialized/*:PersistentKeyBlocks/*:CausalManyHeads/*:OffsetOutputs/*:BackwardModes.*" > "$OUT/gpu-tests-bundle.log" 2>&1
  echo "gpu tests from the bundle exit $?"
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure" "$OUT/gpu-tests-bundle.log" | head -30
fi
if want sanitizer; then
  echo "== compute-sanitizer"
  small=${SANITIZE_FILTER:-'Grid/AttentionCorrectness.MatchesReference/*sq17_sk17*d40*:Grid/AttentionCorrectness.MatchesReference/*sq17_sk17*d64*:Grid/HopperQkWgmma.MatchesReference/*sq17_sk17*d64*:InvalidRequest.*'}
  for tool in memcheck racecheck synccheck; do
    echo "=== $tool" >> "$OUT/sanitizer.log"
    timeout 300 compute-sanitizer --tool $tool --error-exitcode 9 /tmp/fj/flashjit-gpu-tests \
      --gtest_filter="$small" > /tmp/sanitizer-$tool.log 2>&1
    rc=$?
    cat /tmp/sanitizer-$tool.log >> "$OUT/sanitizer.log"
    echo "$tool exit $rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/sanitizer-$tool.log | tail -1)"
  done
fi
if want tune && [ -n "${TUNE_ARGS:-}" ]; then
  echo "== flash-tune $TUNE_ARGS"
  /tmp/fj/flash-tune $TUNE_ARGS --quiet --out "$OUT/tune.md" > /tmp/tune.log 2>&1
  echo "flash-tune exit $?"
  tail -n 45 /tmp/tune.log
fi
if want python; then
  echo "== Python package: pytest (GPU) and examples/pytorch_block.py"
  python3 -m pytest -q python/tests ${PYTEST_ARGS:-} ${PYTEST_K:+-k "$PYTEST_K"} > "$OUT/pytest.log" 2>&1
  echo "pytest exit $?"
  tail -n 8 "$OUT/pytest.log"
  python3 examples/pytorch_block.py 2>&1 | tail -n 5
fi
if want bench; then
  echo "== benchmark"
  python3 bench/bench_attention.py --out "$OUT/bench" "$@" 2>&1 | tail -n 60
fi
if want bench-backward; then
  echo "== forward+backward benchmark"
  python3 bench/bench_backward.py --out "$OUT/bench-backward" ${BWD_ARGS:-} 2>&1 | tail -n 40
fi
if want profile-kernels; then
  echo "== kernel times of a training step (PROFILE_ARGS go to profile_kernels.py)"
  python3 bench/profile_kernels.py --out "$OUT/profile-kernels" ${PROFILE_ARGS:-} 2>&1 | tail -n 80
fi
if want host-overhead; then
  echo "== host time of a call from Python (HOST_ARGS go to host_overhead.py)"
  python3 bench/host_overhead.py --out "$OUT/host-overhead" ${HOST_ARGS:-} 2>&1 | tail -n 80
fi
if want bench-variants; then
  echo "== variants benchmark (sliding window, GQA, softcap, ALiBi)"
  python3 bench/bench_variants.py --out "$OUT/bench-variants" 2>&1 | tail -n 30
fi
if want bench-varlen; then
  echo "== varlen benchmark (packed sequences)"
  python3 bench/bench_varlen.py --out "$OUT/bench-varlen" 2>&1 | tail -n 16
fi
if want bench-modifiers; then
  echo "== user modifier benchmark (score_mod / mask_mod expressions vs FlexAttention)"
  python3 bench/bench_user_modifiers.py --out "$OUT/bench-modifiers" 2>&1 | tail -n 24
fi
if want bench-block-mask; then
  echo "== block mask benchmark (user-given block masks vs FlexAttention)"
  python3 bench/bench_block_mask.py --out "$OUT/bench-block-mask" 2>&1 | tail -n 16
fi
if want bench-pack-gqa; then
  echo "== GQA decoding benchmark (head packing vs unpacked vs SDPA)"
  python3 bench/bench_pack_gqa.py --out "$OUT/bench-pack-gqa" 2>&1 | tail -n 14
fi
if want bench-dropout; then
  echo "== dropout benchmark (vs flashjit without dropout and SDPA's dropout backends)"
  python3 bench/bench_dropout.py --out "$OUT/bench-dropout" 2>&1 | tail -n 16
fi
if want train; then
  echo "== training check"
  python3 examples/train_check.py --out "$OUT/train.json" ${TRAIN_ARGS:-} 2>&1 | tail -n 20
fi

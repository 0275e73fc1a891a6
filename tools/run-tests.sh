#!/usr/bin/env bash
# Builds flashjit (default build against the system LLVM/MLIR, and the
# self-contained FLASHJIT_STATIC_LLVM=ON build) and runs every test: lit/FileCheck,
# GoogleTest units, and the GPU tests (which skip with a message without a GPU).
# FLASHJIT_TEST_STATIC=0 skips the static build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install-deps.sh"
"$root/tools/build.sh"
(cd "$root/build" && ctest --output-on-failure)
# The Python package: argument checks without a GPU here; the GPU tests in the
# same folder skip without PyTorch/CUDA and run on GPU hosts.
python3 -m pytest --version > /dev/null 2>&1 || python3 -m pip install -q pytest
(cd "$root" && FLASHJIT_LIBRARY="$root/build/runtime/libflashjit.so" python3 -m pytest -q python/tests)
# The package installs with one command and carries the library.
target=$(mktemp -d)
python3 -m pip install -q --no-deps --target "$target" "$root/python"
(cd "$target" && PYTHONPATH="$target" python3 -c \
  'import flashjit, os; assert os.path.isfile(flashjit.library_path()), flashjit.library_path(); print("pip install ./python: ok,", flashjit.library_path())')
rm -rf "$target" "$root/python/build" "$root/python/flashjit.egg-info"
if [ "${FLASHJIT_TEST_STATIC:-1}" != 0 ]; then
  BUILD_DIR="$root/build-static" "$root/tools/build.sh" -DFLASHJIT_STATIC_LLVM=ON
  (cd "$root/build-static" && ctest --output-on-failure)
fi

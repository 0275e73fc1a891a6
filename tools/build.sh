#!/usr/bin/env bash
# Configures and builds flashjit. BUILD_DIR (default build) and any extra CMake
# arguments, e.g.: BUILD_DIR=build-static tools/build.sh -DFLASHJIT_STATIC_LLVM=ON
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${BUILD_DIR:-$root/build}
cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" > "$dir.configure.log" 2>&1 ||
  { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" -j "$(nproc)"

#!/usr/bin/env bash
# Packs the self-contained (FLASHJIT_STATIC_LLVM=ON) binaries for the GPU host,
# which has no LLVM: stripped, xz-compressed, into .carry/ (ignored by git).
set -euo pipefail
build=${1:-build-static}
root=$(cd "$(dirname "$0")/.." && pwd)
stage=$(mktemp -d)
for f in tools/flash-run/flash-run tools/flash-tune/flash-tune tests/gpu/flashjit-gpu-tests \
         runtime/libflashjit.so; do
  strip -o "$stage/$(basename "$f")" "$root/$build/$f"
done
mkdir -p "$root/.carry"
tar -C "$stage" -cf - . | xz -T2 -6 > "$root/.carry/flashjit-bin.tar.xz"
rm -rf "$stage"
ls -la "$root/.carry/flashjit-bin.tar.xz"

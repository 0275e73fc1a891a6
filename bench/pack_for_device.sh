#!/usr/bin/env bash
# Packs the self-contained (FLASHJIT_STATIC_LLVM=ON) binaries for the GPU host,
# which has no LLVM: stripped, xz-compressed, into .carry/ (ignored by git).
set -euo pipefail
build=${1:-build-static}
root=$(cd "$(dirname "$0")/.." && pwd)
stage=$(mktemp -d)
for f in tools/flash-run/flash-run tools/flash-tune/flash-tune tests/gpu/flashjit-gpu-tests \
         runtime/libflashjit.so examples/host_app/host_app examples/host_app/host_app_embedded; do
  strip -o "$stage/$(basename "$f")" "$root/$build/$f"
done
# Kernels generated here, on a machine without a GPU, for the GPU host to run
# with FLASHJIT_DISABLE_JIT=1: the GPU tests' variants and the example's.
"$root/$build/tools/flash-gen/flash-gen" --bundle "$stage/tests-bundle" \
  --variants "$root/tests/gpu/bundle-variants.json" 2>&1 | tail -n 1
cp -r "$root/$build/examples/host_app/bundle" "$stage/host_app_bundle"
mkdir -p "$root/.carry"
tar -C "$stage" -cf - . | xz -T2 -6 > "$root/.carry/flashjit-bin.tar.xz"
rm -rf "$stage"
ls -la "$root/.carry/flashjit-bin.tar.xz"

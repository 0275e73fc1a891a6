#!/usr/bin/env bash
# Installs what flashjit needs to build on Debian 12 (bookworm): LLVM/MLIR 22,
# lit/FileCheck, GoogleTest, CMake, Ninja. The CUDA toolkit's headers (cuda.h,
# nvrtc.h) are expected at /usr/local/cuda (not from apt); without NVRTC the
# GPU reference and GPU tests are not built, everything else is.
set -euo pipefail
packages=(cmake ninja-build g++ python3 python3-numpy llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
          libzstd-dev zlib1g-dev libedit-dev libxml2-dev libffi-dev libcurl4-openssl-dev libgtest-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "flashjit: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -f /usr/local/cuda/include/cuda.h ] && [ ! -f /usr/include/cuda.h ]; then
  echo "flashjit: cuda.h not found: install the CUDA toolkit (headers) under /usr/local/cuda" >&2
  exit 1
fi

#!/usr/bin/env bash
# The main job: install dependencies, build, and run flash-run, which generates
# the default forward kernels, assembles them with ptxas when present, and on a
# GPU also runs and verifies them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install-deps.sh"
"$root/tools/build.sh"
"$root/build/tools/flash-run/flash-run"

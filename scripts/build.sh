#!/usr/bin/env bash
# Configures and builds sagejit into ./build (Release).
set -euo pipefail
cd "$(dirname "$0")/.."
cuda_home=${SAGEJIT_CUDA_HOME:-${CUDA_HOME:-/usr/local/cuda}}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEJIT_CUDA_HOME="$cuda_home" >/dev/null
cmake --build build -j "$(nproc)"

#!/usr/bin/env bash
# Sets up, builds and runs the test suites. CPU tests always run; the GPU suite runs too and
# reports "skipped: no GPU" for each test when there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
export SAGEJIT_CACHE_DIR=${SAGEJIT_CACHE_DIR:-$(mktemp -d)/sagejit-cache}
./build/sagejit_tests
./build/sagejit_gpu_tests

#!/usr/bin/env bash
# The main job: sets up, builds, then `sagejit selftest` — on a GPU machine it compiles, runs and
# checks the kernels against the host reference; without a GPU it generates, compiles and caches
# every shipped kernel for this toolkit's archs and says that no GPU was found.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/sagejit info
./build/sagejit selftest

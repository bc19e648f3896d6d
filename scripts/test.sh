#!/usr/bin/env bash
# Sets up, builds and runs every suite: the CPU doctest suite, the GPU doctest suite (each test
# reports "skipped: no GPU" without a GPU) and the Python binding tests. Ends with one line:
# "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
bash scripts/build.sh || exit 1
python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install -q pytest || exit 1
# nvdisasm for the CPU suite's check of the sm_90a kernels' disassembly
# (tests/cpu/kernels/test_wgmma_sass.cpp): $SAGEJIT_NVDISASM, else the CUDA toolkit's, else NVIDIA's
# PyPI wheel installed into build/tools. Without one that test is skipped, and this says so.
if [ -z "${SAGEJIT_NVDISASM:-}" ]; then
  cuda_bin=${SAGEJIT_CUDA_HOME:-${CUDA_HOME:-/usr/local/cuda}}/bin/nvdisasm
  wheel_bin=$PWD/build/tools/nvidia/cu13/bin/nvdisasm
  if [ -x "$cuda_bin" ]; then
    export SAGEJIT_NVDISASM=$cuda_bin
  else
    [ -x "$wheel_bin" ] ||
      python3 -m pip install -q --upgrade --target "$PWD/build/tools" nvidia-cuda-nvdisasm==13.2.51 ||
      echo "test.sh: could not install nvdisasm from PyPI" >&2
    if [ -x "$wheel_bin" ]; then
      export SAGEJIT_NVDISASM=$wheel_bin
    else
      echo "test.sh: no nvdisasm: the CPU test of the sm_90a disassembly is skipped" >&2
    fi
  fi
fi
export SAGEJIT_CACHE_DIR=${SAGEJIT_CACHE_DIR:-$(mktemp -d)/sagejit-cache}
export SAGEJIT_LIBRARY=$PWD/build/libsagejit.so PYTHONPATH=$PWD/python
log=$(mktemp)
status=0
./build/sagejit_tests 2>&1 | tee -a "$log" || status=1
./build/sagejit_gpu_tests 2>&1 | tee -a "$log" || status=1
python3 -m pytest -q -rs tests/python 2>&1 | tee -a "$log" || status=1
# doctest: "[doctest] test cases: N | P passed | F failed | S skipped"; pytest: "P passed, S skipped in 1.2s".
awk -F'|' '
/^\[doctest\] test cases:/ { for (i = 2; i <= NF; i++) { split($i, w, " "); n[w[2]] += w[1] } }
/ in [0-9.]+s/ && /passed|failed|skipped/ {
  line = $0; gsub(/=/, "", line); m = split(line, parts, ",")
  for (i = 1; i <= m; i++) { split(parts[i], w, " "); if (w[2] ~ /^(passed|failed|skipped)/) n[w[2]] += w[1] }
}
END { printf "tests: %d passed, %d failed, %d skipped\n", n["passed"], n["failed"], n["skipped"] }' "$log"
rm -f "$log"
exit $status

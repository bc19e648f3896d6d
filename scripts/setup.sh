#!/usr/bin/env bash
# Installs what sagejit builds against (Debian/Ubuntu packages). The CUDA toolkit is expected at
# /usr/local/cuda (headers for types; NVRTC at run time) or at $SAGEJIT_CUDA_HOME.
set -euo pipefail
packages=(cmake ninja-build g++ libfmt-dev libspdlog-dev libsqlite3-dev doctest-dev libcli11-dev nlohmann-json3-dev)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
cuda_home=${SAGEJIT_CUDA_HOME:-${CUDA_HOME:-/usr/local/cuda}}
if [ ! -f "$cuda_home/include/cuda.h" ]; then
  echo "setup: no CUDA toolkit at $cuda_home (need include/cuda.h and lib64/libnvrtc.so*); set SAGEJIT_CUDA_HOME" >&2
  exit 1
fi

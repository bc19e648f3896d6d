#!/usr/bin/env bash
# Profiles one launch of a quantization kernel with Nsight Compute (on a GPU machine with ncu on
# PATH, a build in ./build) within an attention call, and prints its duration, memory throughput,
# occupancy and the leading warp stall reasons.
# Usage: scripts/profile_quant.sh [ncu kernel filter: a name, or regex:...] ["b=4 hq=32 sq=1024 d=128"]   (shape as `sagejit bench`)
# Output: $OUT (or ./gpu-out)/quant_<tag>.ncu-rep and quant_<tag>.txt (tag: $TAG or "profile").
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
kernel=${1:-quantize_kv}
shape=${2:-"b=4 hq=32 sq=1024 d=128"}
tag=${TAG:-profile}
export SAGEJIT_CACHE_DIR=${SAGEJIT_CACHE_DIR:-$(mktemp -d)/sagejit-cache}
./build/sagejit bench --shape "$shape" --repeat 1 >/dev/null  # compile outside the profiler
timeout 300 ncu --kernel-name "$kernel" --launch-skip 5 --launch-count 1 --set full --import-source no \
  -f -o "$out/quant_$tag" ./build/sagejit bench --shape "$shape" --repeat 1 >"$out/quant_${tag}_run.log" 2>&1
echo "ncu rc $?"
{
  ncu --import "$out/quant_$tag.ncu-rep" --page details 2>&1 |
    grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Memory Throughput|L2 Hit Rate|Achieved Occupancy|Theoretical Occupancy|Registers Per|Issue Slots Busy|Warp Cycles Per Issued|No Eligible|Block Limit Registers|Waves Per SM|Grid Size" | head -30
  ncu --import "$out/quant_$tag.ncu-rep" --page raw --csv \
    --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_bytes.sum >"$out/quant_${tag}_raw.csv" 2>&1
  python3 - "$out/quant_${tag}_raw.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
if len(rows) < 3: print(open(sys.argv[1]).read()[:2000]); sys.exit()
head, units, vals = rows[0], rows[1], rows[-1]
pairs = []
for h, u, v in zip(head, units, vals):
    try: pairs.append((h, u, float(v.replace(',', ''))))
    except ValueError: pass
for h, u, v in sorted(pairs, key=lambda p: -p[2])[:16]:
    if v > 0.01: print(f"{v:14.3f} {u:6} {h}")
PY
} | tee "$out/quant_$tag.txt"

#!/usr/bin/env bash
# Profiles one launch of the wgmma attention kernel with Nsight Compute (on a GPU machine with ncu
# on PATH, a build in ./build) and prints what the tuning notes quote: pipe utilization, issue
# slots, warp stall reasons, and the SASS lines with the most stall samples.
# Usage: scripts/profile_wgmma.sh ["b=4 hq=32 sq=4096 d=128"]   (the shape, as `sagejit bench`)
# Output: $OUT (or ./gpu-out)/profile.ncu-rep, profile_details.txt, profile_sass.csv.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
shape=${1:-"b=4 hq=32 sq=4096 d=128"}
export SAGEJIT_CACHE_DIR=${SAGEJIT_CACHE_DIR:-$(mktemp -d)/sagejit-cache}
./build/sagejit bench --shape "$shape" >/dev/null  # compile outside the profiler
timeout 300 ncu --kernel-name regex:attention_wgmma --launch-skip 3 --launch-count 1 --set full \
  --import-source no -f -o "$out/profile" ./build/sagejit bench --shape "$shape" >"$out/profile_run.log" 2>&1
echo "ncu rc $?"
ncu --import "$out/profile.ncu-rep" --page details >"$out/profile_details.txt" 2>&1
grep -E "Duration|SM Frequency|Issue Slots Busy|Executed Ipc Active|Warp Cycles Per Issued|Active Warps Per Scheduler|No Eligible|One or More Eligible" \
  "$out/profile_details.txt" | head -20
ncu --import "$out/profile.ncu-rep" --page raw --csv \
  --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,regex:sm__pipe_.*_cycles_active\.avg\.pct_of_peak_sustained_active,regex:sm__inst_executed_pipe_.*\.avg\.pct_of_peak_sustained_active \
  >"$out/profile_raw.csv" 2>&1
python3 - "$out/profile_raw.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
if len(rows) < 3: print(open(sys.argv[1]).read()[:2000]); sys.exit()
head, vals = rows[0], rows[-1]
pairs = []
for h, v in zip(head, vals):
    try: pairs.append((h, float(v.replace(',', ''))))
    except ValueError: pass
for h, v in sorted(pairs, key=lambda p: -p[1])[:28]:
    if v > 0.01: print(f"{v:10.3f}  {h}")
PY
ncu --import "$out/profile.ncu-rep" --page source --csv --print-source sass >"$out/profile_sass.csv" 2>&1
python3 - "$out/profile_sass.csv" <<'PY'
import csv, sys
try:
    rows = list(csv.reader(open(sys.argv[1])))
except Exception as e:
    print("no source page:", e); sys.exit()
hdr = next((i for i, r in enumerate(rows) if any('Source' == c for c in r)), None)
if hdr is None: print("no source page:", ''.join(open(sys.argv[1]).read()[:500])); sys.exit()
h = rows[hdr]
src = h.index('Source')
stall = next((i for i, c in enumerate(h) if c.startswith('Warp Stall Sampling (All')), None)
if stall is None: print("columns:", h[:30]); sys.exit()
lines = []
for r in rows[hdr + 1:]:
    try: lines.append((float(r[stall]), r[src]))
    except (ValueError, IndexError): pass
total = sum(v for v, _ in lines) or 1
print(f"stall samples {total:.0f} over {len(lines)} SASS lines; top 25:")
for v, s in sorted(lines, reverse=True)[:25]: print(f"{100*v/total:6.2f}%  {s.strip()[:110]}")
PY

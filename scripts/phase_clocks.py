#!/usr/bin/env python3
"""The SM clock and board power of each timed phase of an A/B run (scripts/bench_ab.sh).

The kernels are power-bound on the H100 and H200 (bench/results/2026-11-28-power-bound-h100.md), so
a comparison of two kernels reads TOPS and the clock each held: TOPS per GHz says whether a change
did more per clock or only ran at another clock.

Reads DIR/smi.csv (nvidia-smi --query-gpu=timestamp,power.draw,clocks.sm,
clocks_throttle_reasons.active,temperature.gpu --format=csv,noheader -lms 50) and DIR/phases.txt
(lines "NAME T0 T1 REST": a phase's start and end in Unix seconds, then the bench output with its
"kernel only ... TOPS"). For each phase: the median clock over its busy samples after its first
second (the clock ramps as a phase starts), the 10th-90th percentile range, the median power, the
throttle reasons seen, and kernel-only TOPS per GHz. Phases shorter than about a second have no
samples and say so.

    python3 scripts/phase_clocks.py gpu-out
"""

import datetime
import statistics
import sys


def samples(path):
    rows = []
    for line in open(path):
        f = [x.strip() for x in line.split(",")]
        try:
            t = datetime.datetime.strptime(f[0], "%Y/%m/%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
            rows.append((t.timestamp(), float(f[1].split()[0]), float(f[2].split()[0]), f[3]))
        except (ValueError, IndexError):
            continue  # a header or a torn last line
    return rows


def main(out_dir):
    rows = samples(f"{out_dir}/smi.csv")
    for line in open(f"{out_dir}/phases.txt"):
        name, t0, t1 = line.split()[:3]
        t0, t1 = float(t0), float(t1)
        tops = None
        if "kernel only" in line:
            tops = float(line.split("kernel only")[1].split("TOPS")[0].split()[-1])
        busy = [r for r in rows if t0 + 1.0 <= r[0] <= t1 and r[1] > 300]  # > 300 W: a kernel running
        if not busy:
            print(f"{name:32s} {tops or 0:7.1f} TOPS  (no samples: a phase under about a second)")
            continue
        clocks = sorted(r[2] for r in busy)
        mhz = statistics.median(clocks)
        lo, hi = clocks[len(clocks) // 10], clocks[-1 - len(clocks) // 10]
        watts = statistics.median(r[1] for r in busy)
        reasons = ",".join(sorted({r[3] for r in busy}))
        per_ghz = f"{tops / mhz * 1000:5.0f}" if tops else "    -"
        print(f"{name:32s} {tops or 0:7.1f} TOPS  {mhz:5.0f} MHz [{lo:.0f}-{hi:.0f}]  {watts:4.0f} W  "
              f"{per_ghz} TOPS/GHz  n={len(busy)} throttle {reasons}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu-out")

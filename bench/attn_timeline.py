#!/usr/bin/env python3
"""Where the time of one end-to-end sagejit.attention call goes on the GPU: every kernel of the
call (quantization passes, memsets, the attention kernel) with its duration, and the idle gaps
between them, from a torch.profiler (CUPTI) trace of several calls after warm-up.

Run from the repository root:
    PYTHONPATH=python python3 bench/attn_timeline.py [--seq 1024] [--head-dim 128] [--causal] [--pv f16]
Prints one table per call shape: kernel, median duration (us), median start offset from the
call's first kernel (us); then the call's median GPU span, the sum of kernel times, and the
CUDA-event time of the same calls for comparison.
"""

import argparse
import statistics
import sys

import torch
from torch.profiler import ProfilerActivity, profile

import sagejit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--pv", default="default", choices=["default", "fp8", "f16"], help="sagejit.attention's pv")
    ap.add_argument("--calls", type=int, default=10)
    a = ap.parse_args()
    heads = 32 if a.head_dim >= 128 else 64
    q, k, v = (torch.randn(a.batch, heads, a.seq, a.head_dim, device="cuda", dtype=torch.float16) for _ in range(3))
    for _ in range(5):
        sagejit.attention(q, k, v, causal=a.causal, pv=a.pv)
    torch.cuda.synchronize()

    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    event_ms = []
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(a.calls):
            start.record()
            sagejit.attention(q, k, v, causal=a.causal, pv=a.pv)
            stop.record()
            torch.cuda.synchronize()
            event_ms.append(start.elapsed_time(stop))
    kernels = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA),
                     key=lambda e: e.time_range.start)
    # Split into calls: the attention kernel ends each call.
    calls, cur = [], []
    for e in kernels:
        cur.append(e)
        if "attention" in e.name:
            calls.append(cur)
            cur = []
    if not calls:
        print("no attention kernel in the trace", file=sys.stderr)
        return 1
    rows = {}
    spans, busy = [], []
    for c in calls:
        t0 = c[0].time_range.start
        spans.append(c[-1].time_range.end - t0)
        busy.append(sum(e.time_range.end - e.time_range.start for e in c))
        for i, e in enumerate(c):
            key = (i, e.name[:70])
            rows.setdefault(key, []).append((e.time_range.end - e.time_range.start, e.time_range.start - t0))
    print(f"B={a.batch} H={heads} S={a.seq} D={a.head_dim} causal={a.causal} pv={a.pv}: {len(calls)} calls traced")
    print(f"{'#':>2} {'kernel':70} {'dur us':>8} {'start us':>9}")
    for (i, name), v in sorted(rows.items()):
        print(f"{i:>2} {name:70} {statistics.median(d for d, _ in v):8.1f} {statistics.median(s for _, s in v):9.1f}")
    print(f"GPU span of a call (first kernel start to attention end): {statistics.median(spans):.1f} us; "
          f"kernel time summed: {statistics.median(busy):.1f} us; CUDA events around the call: "
          f"{1000 * statistics.median(event_ms):.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Speed of sagejit attention beside PyTorch SDPA (cuDNN and FLASH), same card, same run
(DESIGN.md §3).

Shapes: B=4; H=32·D=128 and H=64·D=64 (H=32·D=96 with --d96, H=16·D=256 with --d256; --dim picks
head dims alone); S in 1k..16k (32k with --long);
causal and not; fp16. TOPS = 4·B·H·S²·D / t, halved for causal.

Columns:
    sdpa-cudnn, sdpa-flash  torch.nn.functional.scaled_dot_product_attention under sdpa_kernel()
    sagejit e2e             sagejit.attention(q, k, v): fp16 in, fp16 out, quantization included
    sagejit kernel          the attention kernel alone (reuse_quantized=True after one normal call
                            on the same inputs), as SageAttention reports its speed

Timing: CUDA events around each call, after warm-up: 3 calls, then half a second of untimed calls
of the same method (--warm-seconds), and a second of GPU work before the first row. The card lowers
its clock over about half a second of load under its power cap, so without the half second a
figure taken right after a pause (input creation, a first call's compile) or a lighter method ran at
a clock no sustained load holds: cuDNN 6-14% fast at most 1k-2k rows on the H200
(bench/results/2026-11-28-wave-cut-and-quantizer-bounds-h200.md §4). Then the median of >= 20 calls
(more for short calls, about 0.25 s of calls per figure). Every method is timed --rounds times (default
2), round robin (cuDNN, FLASH, sagejit e2e, sagejit kernel, then again), and keeps the fastest median: a
figure at a shape moved by up to a third between runs, and the card's clock follows its power draw, so
each method gets its best under the conditions the others had. Under the power cap one timing's clock
can differ from the next one's by a quarter (1470-1980 MHz at 1k on the H200,
bench/results/2026-11-28-1k-ratio-and-fp16-q-h200.md §2), so the table also gives e2e/cudnn per round
(cuDNN's and sagejit e2e's timings of the same round, with FLASH's between them): their median and
range, over the rounds in which both have a figure. The JSON keeps every round's median. Inputs
rotate per call over >= 3 sets totalling well over the 50 MB L2, so no call finds its inputs in L2.
Kernel-only calls must reuse the one set just quantized (the library keeps one quantized copy), so
there a 256 MB buffer is written between calls instead, outside the timed region, to evict L2.

The whole run stays under --budget seconds (default 270): rows left when it runs out are reported
as skipped. A failing cell prints its message in the row and the run goes on.

--qk and --pv choose sagejit's mode (default: int8 and the GPU's default P·V type); the precise mode
is --qk int8x2 --pv f16.

Run from the repository root:
    PYTHONPATH=python python3 bench/attn_bench.py --json out.json
The markdown table is printed last; progress goes to stderr.
"""

import argparse
import datetime
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import sagejit

L2_FLUSH_BYTES = 256 << 20  # > 5× the H100's 50 MB L2
MIN_ROTATION_BYTES = 256 << 20  # input sets in rotation total at least this
MIN_ITERS = 20
MAX_ITERS = 100
TARGET_SECONDS = 0.25  # timed calls per figure: about this long, within [MIN_ITERS, MAX_ITERS]
WARMUP = 3
WARM_SECONDS = 0.5  # then untimed calls for this long before each timing (time_calls)
WARM_BATCH = 10  # calls queued between the warm-up's clock checks
ROUNDS = 2  # timings per method and shape, round robin (bench_row; --rounds)


def tops(B, H, S, D, causal, ms):
    flops = 4 * B * H * S * S * D / (2 if causal else 1)
    return flops / (ms * 1e-3) / 1e12


def time_calls(fn, n_sets, before=None, warm_seconds=WARM_SECONDS):
    """(median ms, calls timed, median host µs) of fn(i), i = call index mod n_sets.

    before(): run before each call, outside the timed region (L2 eviction).
    warm_seconds: after the warm-up calls, go on calling (with before()) this long untimed, so that
    the figure is taken at the clock the method's own power draw holds (the card lowers its clock
    over about half a second of load; bench/results/2026-11-28-wave-cut-and-quantizer-bounds-h200.md §3).
    """
    for i in range(WARMUP):
        fn(i % n_sets)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < warm_seconds:
        for _ in range(WARM_BATCH):
            if before is not None:
                before()
            fn(i % n_sets)
            i += 1
        torch.cuda.synchronize()
    # One probe sets the iteration count: short calls get more samples, long ones stay at 20.
    t0 = time.perf_counter()
    fn(0)
    torch.cuda.synchronize()
    probe = time.perf_counter() - t0
    iters = int(min(MAX_ITERS, max(MIN_ITERS, TARGET_SECONDS / max(probe, 1e-6))))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    host = []
    for i in range(iters):
        if before is not None:
            before()
        starts[i].record()
        t0 = time.perf_counter()
        fn(i % n_sets)
        host.append(time.perf_counter() - t0)
        ends[i].record()
    torch.cuda.synchronize()
    times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
    # Host time per call: when it nears the GPU time the queue drains and the events measure the
    # host (binding, launches) rather than the kernels; the JSON keeps it to tell.
    return statistics.median(times), iters, statistics.median(host) * 1e6


def warm_up_gpu(seconds=1.0):
    """Busy the GPU for a second, so that the first row does not run while its clocks ramp from idle."""
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.float16)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize()
    del a


def cosine(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return ((a @ b) / (a.norm() * b.norm())).item()


def bench_row(B, H, S, D, causal, flush, mode, warm_seconds=WARM_SECONDS, rounds=ROUNDS):
    """One shape: a dict of figures (TOPS, ms, iters, each round's ms) or errors per method, and the
    e2e/cudnn ratio of each round."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    set_bytes = 3 * B * H * S * D * 2
    n_sets = max(3, math.ceil(MIN_ROTATION_BYTES / set_bytes))
    sets = [tuple(torch.randn(B, H, S, D, device="cuda", dtype=torch.float16) for _ in range(3))
            for _ in range(n_sets)]
    result = {"B": B, "H": H, "S": S, "D": D, "causal": causal, "input_sets": n_sets}
    outputs = {}

    def record(name, fn, before=None):
        try:
            ms, iters, host_us = time_calls(fn, n_sets, before, warm_seconds)
            result[name] = {"ms": ms, "tops": tops(B, H, S, D, causal, ms), "iters": iters,
                            "host_us": host_us}
        except Exception as e:  # noqa: BLE001 — the row reports it, the run goes on
            result[name] = {"error": f"{type(e).__name__}: {e}"}
            torch.cuda.synchronize()

    def run_sdpa(i, backend):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(*sets[i], is_causal=causal)

    # (name, timed call, before each call, before the timing) of every method.
    methods = [(name, lambda i, b=backend: run_sdpa(i, b), None, None)
               for name, backend in (("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION),
                                     ("sdpa_flash", SDPBackend.FLASH_ATTENTION))]
    # End to end. The first call compiles (or loads from the cache) the kernels: time it apart.
    try:
        t0 = time.perf_counter()
        outputs["sagejit"] = sagejit.attention(*sets[0], causal=causal, **mode)
        torch.cuda.synchronize()
        result["sagejit_first_call_s"] = time.perf_counter() - t0
        methods.append(("sagejit_e2e", lambda i: sagejit.attention(*sets[i], causal=causal, **mode), None, None))
        # Kernel only: set 0 quantized once, then only the attention kernel runs on it.
        methods.append(("sagejit_kernel",
                        lambda i: sagejit.attention(*sets[0], causal=causal, reuse_quantized=True, **mode), flush,
                        lambda: sagejit.attention(*sets[0], causal=causal, **mode)))
    except Exception as e:  # noqa: BLE001
        result["sagejit_e2e"] = {"error": f"{type(e).__name__}: {e}"}
        result["sagejit_kernel"] = {"error": "skipped: end-to-end call failed"}

    # Every method is timed `rounds` times, round robin, and keeps its fastest median: the figures of a
    # shape moved by up to a third between runs (H100, cuDNN at S = 1k, 2026-11-27) and the card's
    # clock follows its power draw, so each method gets its best under the same conditions as the others.
    round_ms = {name: [] for name, _, _, _ in methods}  # each round's median (None: no figure that round)
    for _ in range(rounds):
        for name, fn, before, prepare in methods:
            previous = result.get(name)
            if previous is not None and "error" in previous:
                round_ms[name].append(None)
                continue
            try:
                if prepare is not None:
                    prepare()
            except Exception as e:  # noqa: BLE001 — a figure from an earlier round stands
                torch.cuda.synchronize()
                if previous is None:
                    result[name] = {"error": f"{type(e).__name__}: {e}"}
                round_ms[name].append(None)
                continue
            record(name, fn, before)
            round_ms[name].append(result[name].get("ms"))
            if previous is not None and ("error" in result[name] or result[name]["ms"] > previous["ms"]):
                result[name] = previous
    for name, ms in round_ms.items():
        if "ms" in result.get(name, {}):
            result[name]["rounds_ms"] = ms
    pairs = zip(round_ms.get("sdpa_cudnn", []), round_ms.get("sagejit_e2e", []))
    result["e2e_over_cudnn_rounds"] = [c / e for c, e in pairs if c is not None and e is not None]
    for name, backend in (("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION), ("sdpa_flash", SDPBackend.FLASH_ATTENTION)):
        if "error" not in result.get(name, {"error": ""}):
            try:
                outputs[name] = run_sdpa(0, backend)
            except Exception as e:  # noqa: BLE001 — no output to compare with; the figure stands
                result[f"{name}_output_error"] = f"{type(e).__name__}: {e}"
                torch.cuda.synchronize()
    if "error" not in result.get("sagejit_kernel", {"error": ""}):
        try:
            sagejit.attention(*sets[0], causal=causal, **mode)
            k_out = sagejit.attention(*sets[0], causal=causal, reuse_quantized=True, **mode)
            # Reusing the quantized inputs must give the end-to-end output exactly.
            result["kernel_matches_e2e"] = bool(torch.equal(k_out, outputs["sagejit"]))
        except Exception as e:  # noqa: BLE001
            result["sagejit_kernel"] = {"error": f"{type(e).__name__}: {e}"}

    # A speed figure is only worth printing for a correct result: compare with SDPA.
    if "sagejit" in outputs:
        for ref in ("sdpa_cudnn", "sdpa_flash"):
            if ref in outputs:
                try:
                    result["cos_vs_sdpa"] = cosine(outputs["sagejit"], outputs[ref])
                except Exception as e:  # noqa: BLE001
                    result["cos_vs_sdpa_error"] = f"{type(e).__name__}: {e}"
                break
    del sets, outputs
    return result


# The heads of each head dim, as the default rows run them (H32 at D 128 and 96, H64 at 64, H16 at 256).
HEADS_OF_DIM = {64: 64, 96: 32, 128: 32, 256: 16}


def cell(r, name):
    c = r.get(name, {})
    if "tops" in c:
        return f"{c['tops']:.0f}"
    msg = c.get("error", "")
    line = msg.strip().splitlines()[0] if msg.strip() else ""
    return line if len(line) <= 60 else line[:59] + "…"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the rows and the environment here")
    ap.add_argument("--long", action="store_true", help="also S = 32k")
    ap.add_argument("--d96", action="store_true", help="also H=32, D=96")
    ap.add_argument("--d256", action="store_true", help="also H=16, D=256")
    ap.add_argument("--seq", type=int, action="append", help="only these S (repeatable)")
    ap.add_argument("--dim", type=int, action="append", choices=sorted(HEADS_OF_DIM),
                    help="only these head dims, each with its H (repeatable; overrides --d96 and --d256)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--qk", default="int8", help="sagejit's Q/K type: int8 (default), int4, int8x2")
    ap.add_argument("--pv", default="default", help="sagejit's P·V type: default, fp8, f16")
    ap.add_argument("--warm-seconds", type=float, default=WARM_SECONDS,
                    help=f"untimed calls of each method before each of its timings, in seconds (default {WARM_SECONDS})")
    ap.add_argument("--rounds", type=int, default=ROUNDS,
                    help=f"timings of each method per shape, round robin (default {ROUNDS}); the table "
                         "keeps each method's fastest and gives the per-round e2e/cudnn ratios")
    ap.add_argument("--budget", type=float, default=270.0,
                    help="seconds; rows not started by then are skipped (default 270)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    if not torch.cuda.is_available():
        sys.exit("attn_bench: no CUDA device")
    t_start = time.time()
    try:
        version = sagejit.version()
    except sagejit.SagejitError as e:
        version = f"unavailable: {e}"
    props = torch.cuda.get_device_properties(0)
    env = {
        "gpu": props.name,
        "capability": f"sm_{props.major}{props.minor}",
        "sms": props.multi_processor_count,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "sagejit": version,
        "sagejit_mode": {"qk": args.qk, "pv": args.pv},
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "timing": f"CUDA events, {WARMUP} warm-up calls and {args.warm_seconds:g} s of calls per timing "
                  f"(and 1 s of GPU work before the first row), median of "
                  f"{MIN_ITERS}..{MAX_ITERS}, every method the fastest of {args.rounds} medians timed round robin, "
                  f">= 3 rotating input sets >= {MIN_ROTATION_BYTES >> 20} MB; kernel-only: "
                  f"one quantized set, L2 evicted by a {L2_FLUSH_BYTES >> 20} MB write per call",
    }
    print(f"# {env['gpu']} ({env['capability']}, {env['sms']} SMs), torch {env['torch']}, "
          f"cuDNN {env['cudnn']}, sagejit {version}", file=sys.stderr)

    flush_buf = torch.empty(L2_FLUSH_BYTES, dtype=torch.uint8, device="cuda")
    flush = flush_buf.zero_
    warm_up_gpu()

    if args.dim:
        head_configs = [(HEADS_OF_DIM[d], d) for d in args.dim]
    else:
        head_configs = [(32, 128), (64, 64)] + ([(32, 96)] if args.d96 else []) + ([(16, 256)] if args.d256 else [])
    seqs = args.seq or ([1024, 2048, 4096, 8192, 16384] + ([32768] if args.long else []))
    rows = []
    for H, D in head_configs:
        for causal in (False, True):
            for S in seqs:
                elapsed = time.time() - t_start
                if elapsed > args.budget:
                    rows.append({"B": args.batch, "H": H, "S": S, "D": D, "causal": causal,
                                 "skipped": f"time budget {args.budget:.0f}s spent"})
                    continue
                r = bench_row(args.batch, H, S, D, causal, flush, {"qk": args.qk, "pv": args.pv}, args.warm_seconds,
                              args.rounds)
                rows.append(r)
                torch.cuda.empty_cache()
                print(f"[{time.time() - t_start:6.1f}s] D={D} H={H} {'causal' if causal else 'none'}"
                      f" S={S}: cudnn {cell(r, 'sdpa_cudnn')}, flash {cell(r, 'sdpa_flash')}, "
                      f"kernel {cell(r, 'sagejit_kernel')}, e2e {cell(r, 'sagejit_e2e')}",
                      file=sys.stderr)

    env["wall_s"] = time.time() - t_start
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "rows": rows}, f, indent=1)

    print(f"\nattention TOPS — {env['gpu']}, B={args.batch}, fp16, torch {env['torch']}, "
          f"sagejit {version}, qk={args.qk} pv={args.pv}\n")
    print("| D | mask | S | sdpa-cudnn | sdpa-flash | sagejit kernel | sagejit e2e | e2e/cudnn "
          "| per round | cos vs sdpa |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mask = "causal" if r["causal"] else "none"
        head = f"| {r['D']} | {mask} | {r['S']} | "
        if "skipped" in r:
            print(head + f"{r['skipped']} | | | | | | |")
            continue
        ratio = ""
        if "tops" in r.get("sagejit_e2e", {}) and "tops" in r.get("sdpa_cudnn", {}):
            ratio = f"{r['sagejit_e2e']['tops'] / r['sdpa_cudnn']['tops']:.2f}"
        per_round = r.get("e2e_over_cudnn_rounds", [])
        paired = ""
        if per_round:
            paired = f"{statistics.median(per_round):.2f} ({min(per_round):.2f}–{max(per_round):.2f})"
        cos = f"{r['cos_vs_sdpa']:.5f}" if "cos_vs_sdpa" in r else ""
        if r.get("kernel_matches_e2e") is False:
            cos += " (kernel ≠ e2e)"
        print(head + " | ".join(cell(r, n) for n in ("sdpa_cudnn", "sdpa_flash", "sagejit_kernel",
                                                     "sagejit_e2e")) + f" | {ratio} | {paired} | {cos} |")
    print(f"\nwall {env['wall_s']:.0f}s; e2e/cudnn = sagejit e2e TOPS / cuDNN TOPS (> 1: faster), each the fastest "
          f"of {args.rounds} rounds; per round = the ratio within each round: median (min–max)")


if __name__ == "__main__":
    main()

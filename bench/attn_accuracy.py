#!/usr/bin/env python3
"""Accuracy of sagejit attention against float64, beside PyTorch SDPA fp16 (DESIGN.md §3).

Reference: attention in float64, computed on the GPU with torch from the same fp16 (or bf16)
inputs every method gets (upcast, chunked over heads so the score matrix stays ~2 GB). Metrics as
SageAttention and FlashAttention-3 report them, over the whole output tensor:
    cosine similarity Σ o·r / (‖o‖ ‖r‖),  relative L1 Σ|o − r| / Σ|r|,  RMSE sqrt(mean (o − r)²)
and, for sagejit called with return_lse=True, the max abs error of the natural-log LSE.

Distributions (Q, K, V drawn independently, then cast to the input dtype):
    normal    N(0, 1)
    outliers  FlashAttention-3's: N(0, 1) + N(0, 100)·Bernoulli(0.001), i.e. std 10 on 0.1% of
              the entries of each of Q, K, V
    k_bias    K = N(0, 1) + b, b ~ N(0, 5²) per (batch, kv head, channel), shared by all tokens:
              the case K smoothing exists for
    sharp     Q scaled ×8 (peaked softmax)

Rows: sagejit modes (pv default / fp8 / f16, smooth_q on, smooth_k off) and SDPA fp16 with the
default backend choice and with the math backend. A mode the GPU lacks (pv=fp8 without FP8 MMA)
is reported "n/a" with the library's message; any other failure is reported in its row.

Run from the repository root:
    PYTHONPATH=python python3 bench/attn_accuracy.py --json out.json
The markdown table is printed last; progress goes to stderr.
"""

import argparse
import datetime
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

import sagejit

DISTRIBUTIONS = ("normal", "outliers", "k_bias", "sharp")

# (label, B, Hq, Hkv, Sq, Skv, D, mask, distributions); S is filled in from --seq.
def cases(S):
    return [
        ("B2 H32 D128", 2, 32, 32, S, S, 128, "none", DISTRIBUTIONS),
        ("B2 H32 D64", 2, 32, 32, S, S, 64, "none", DISTRIBUTIONS),
        ("B1 H32 D128 causal", 1, 32, 32, S, S, 128, "causal", DISTRIBUTIONS),
        ("B1 H32/8 GQA D128", 1, 32, 8, S, S, 128, "none", DISTRIBUTIONS),
        # Sq < Skv: the alignment of the causal mask matters (query i sees keys j <= i + Skv − Sq).
        ("B1 H8 Sq=S/4 D128 causal-br", 1, 8, 8, S // 4, S, 128, "bottom_right", ("normal",)),
    ]

# (label, keyword arguments of sagejit.attention)
SAGEJIT_MODES = [
    ("sagejit", {}),
    ("sagejit pv=fp8", {"pv": "fp8"}),
    ("sagejit pv=f16", {"pv": "f16"}),
    ("sagejit precise (qk=int8x2 pv=f16)", {"qk": "int8x2", "pv": "f16"}),
    ("sagejit smooth_q", {"smooth_q": True}),
    ("sagejit no smooth_k", {"smooth_k": False}),
]
EXTRA_MODES = [  # --all-modes: scale granularities and INT4 QK (INT4 is sm_80/86/89 only)
    ("sagejit per_warp", {"granularity": "per_warp"}),
    ("sagejit per_block", {"granularity": "per_block"}),
    ("sagejit qk=int4", {"qk": "int4"}),
]


def make_inputs(dist, B, Hq, Hkv, Sq, Skv, D, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)

    def randn(*shape):
        return torch.randn(shape, generator=g, device="cuda", dtype=torch.float32)

    q, k, v = randn(B, Hq, Sq, D), randn(B, Hkv, Skv, D), randn(B, Hkv, Skv, D)
    if dist == "outliers":
        for x in (q, k, v):
            hit = torch.rand(x.shape, generator=g, device="cuda") < 0.001
            x.add_(randn(*x.shape).mul_(10.0) * hit)  # N(0, 100): std 10
    elif dist == "k_bias":
        k.add_(randn(B, Hkv, 1, D).mul_(5.0))  # b ~ N(0, 5²), one per channel, all tokens
    elif dist == "sharp":
        q.mul_(8.0)
    elif dist != "normal":
        raise ValueError(dist)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def allowed_keys(mask, Sq, Skv, device):
    """Bool [Sq, Skv], True where query i may see key j; None for no mask."""
    if mask == "none":
        return None
    i = torch.arange(Sq, device=device)[:, None]
    j = torch.arange(Skv, device=device)[None, :]
    shift = 0 if mask == "causal" else Skv - Sq  # top-left vs bottom-right alignment
    return j <= i + shift


def reference(q, k, v, mask, sm_scale):
    """float64 (out [B, Hq, Sq, D], lse [B, Hq, Sq]); a row that sees no key: out 0, lse −inf."""
    B, Hq, Sq, D = q.shape
    Hkv, Skv = k.shape[1], k.shape[2]
    group = Hq // Hkv  # kv head of q head h is h // group
    allowed = allowed_keys(mask, Sq, Skv, q.device)
    out = torch.empty((B, Hq, Sq, D), dtype=torch.float64, device=q.device)
    lse = torch.empty((B, Hq, Sq), dtype=torch.float64, device=q.device)
    # About three float64 score-sized temporaries per head: keep a chunk near 2 GB.
    heads_per_chunk = max(1, (2 << 30) // (3 * 8 * Sq * Skv))
    for b in range(B):
        for h0 in range(0, Hq, heads_per_chunk):
            hs = torch.arange(h0, min(Hq, h0 + heads_per_chunk), device=q.device)
            qh = q[b, hs].double()
            kh = k[b, hs // group].double()
            vh = v[b, hs // group].double()
            s = torch.matmul(qh, kh.transpose(-1, -2)).mul_(sm_scale)
            if allowed is not None:
                s.masked_fill_(~allowed, -math.inf)
            l = torch.logsumexp(s, dim=-1)
            p = torch.exp(s.sub_(l[..., None]))
            p = torch.nan_to_num_(p, nan=0.0)  # rows with no key: exp(−inf − (−inf))
            out[b, hs] = torch.matmul(p, vh)
            lse[b, hs] = l
    return out, lse


def metrics(o, r):
    """cosine, relative L1, RMSE of o against r, in float64; NaN in o makes all NaN."""
    o = o.double().flatten()
    r = r.flatten()
    d = o - r
    no, nr = o.norm().item(), r.norm().item()
    if no == 0.0 and nr == 0.0:
        cos = 1.0
    elif no == 0.0 or nr == 0.0:
        cos = 0.0
    else:
        cos = (o @ r).item() / (no * nr)
    sr = r.abs().sum().item()
    sd = d.abs().sum().item()
    rel_l1 = (0.0 if sd == 0.0 else math.inf) if sr == 0.0 else sd / sr
    rmse = math.sqrt((d * d).mean().item())
    if torch.isnan(o).any().item():
        cos = rel_l1 = rmse = math.nan
    return {"cos": cos, "rel_l1": rel_l1, "rmse": rmse}


def lse_error(lse, ref):
    lse = lse.double()
    both_inf = torch.isinf(lse) & torch.isinf(ref) & (torch.sign(lse) == torch.sign(ref))
    err = torch.where(both_inf, torch.zeros_like(ref), (lse - ref).abs())
    return err.max().item()


def sdpa(q, k, v, mask, backend):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    Sq, Skv = q.shape[2], k.shape[2]
    kwargs = {}
    if mask == "causal":
        kwargs["is_causal"] = True  # SDPA's causal mask is top-left aligned
    elif mask == "bottom_right":
        kwargs["attn_mask"] = allowed_keys(mask, Sq, Skv, q.device)
    if k.shape[1] != q.shape[1]:
        kwargs["enable_gqa"] = True

    def call():
        return F.scaled_dot_product_attention(q, k, v, **kwargs)

    if backend == "math":
        with sdpa_kernel(SDPBackend.MATH):
            return call()
    return call()


def fmt(x, kind):
    if x is None:
        return ""
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return f"{x:.6f}" if kind == "cos" else f"{x:.2e}"


def short(msg, n=90):
    line = str(msg).strip().splitlines()[0] if str(msg).strip() else repr(msg)
    return line if len(line) <= n else line[: n - 1] + "…"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the rows and the environment here")
    ap.add_argument("--seq", type=int, default=4096, help="sequence length S (default 4096)")
    ap.add_argument("--dtype", choices=("fp16", "bf16"), default="fp16")
    ap.add_argument("--dist", choices=DISTRIBUTIONS, action="append",
                    help="only these distributions (repeatable)")
    ap.add_argument("--all-modes", action="store_true",
                    help="also per_warp / per_block granularity and INT4 QK")
    ap.add_argument("--no-lse", action="store_true", help="skip the return_lse calls")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if not torch.cuda.is_available():
        sys.exit("attn_accuracy: no CUDA device")
    dtype = torch.float16 if args.dtype == "fp16" else torch.bfloat16
    modes = SAGEJIT_MODES + (EXTRA_MODES if args.all_modes else [])
    try:
        version = sagejit.version()
    except sagejit.SagejitError as e:
        version = f"unavailable: {e}"
    env = {
        "gpu": torch.cuda.get_device_name(),
        "capability": "sm_%d%d" % torch.cuda.get_device_capability(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "sagejit": version,
        "dtype": args.dtype,
        "seq": args.seq,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "reference": "float64 attention (torch, GPU) on the same rounded inputs",
        "outliers": "N(0,1) + N(0,100)·Bernoulli(0.001) on Q, K, V (std 10)",
        "k_bias": "K += b, b ~ N(0, 5^2) per (batch, kv head, channel)",
    }
    print(f"# {env['gpu']} ({env['capability']}), torch {env['torch']}, sagejit {version}",
          file=sys.stderr)

    rows = []
    t_start = time.time()
    for ci, (label, B, Hq, Hkv, Sq, Skv, D, mask, dists) in enumerate(cases(args.seq)):
        for dist in dists:
            if args.dist and dist not in args.dist:
                continue
            seed = args.seed * 1000 + ci * 10 + DISTRIBUTIONS.index(dist)
            q, k, v = make_inputs(dist, B, Hq, Hkv, Sq, Skv, D, dtype, seed)
            sm_scale = 1.0 / math.sqrt(D)
            ref_out, ref_lse = reference(q, k, v, mask, sm_scale)
            causal = mask != "none"
            alignment = "bottom_right" if mask == "bottom_right" else "top_left"
            base = {"case": label, "dist": dist, "B": B, "Hq": Hq, "Hkv": Hkv, "Sq": Sq,
                    "Skv": Skv, "D": D, "mask": mask}

            for name, kwargs in modes:
                row = dict(base, method=name, options=kwargs)
                try:
                    o = sagejit.attention(q, k, v, causal=causal, causal_alignment=alignment,
                                          **kwargs)
                    torch.cuda.synchronize()  # a kernel fault shows up in this row
                    row.update(metrics(o, ref_out))
                except sagejit.SagejitError as e:
                    unsupported = e.status in (sagejit.Status.INVALID_ARGUMENT,
                                               sagejit.Status.NOT_AVAILABLE)
                    row["error"] = ("n/a: " if unsupported else "error: ") + str(e)
                except Exception as e:  # noqa: BLE001 — report in the row, go on
                    row["error"] = f"error: {type(e).__name__}: {e}"
                if "error" not in row and not args.no_lse:
                    try:
                        _, lse = sagejit.attention(q, k, v, causal=causal,
                                                   causal_alignment=alignment, return_lse=True,
                                                   **kwargs)
                        torch.cuda.synchronize()
                        row["lse_max_abs"] = lse_error(lse, ref_lse)
                    except Exception as e:  # noqa: BLE001
                        row["lse_error"] = f"{type(e).__name__}: {e}"
                rows.append(row)

            for name, backend in (("sdpa fp16" if dtype == torch.float16 else "sdpa bf16",
                                   "default"),
                                  ("sdpa math", "math")):
                row = dict(base, method=name, backend=backend)
                try:
                    o = sdpa(q, k, v, mask, backend)
                    torch.cuda.synchronize()
                    row.update(metrics(o, ref_out))
                except Exception as e:  # noqa: BLE001
                    row["error"] = f"error: {type(e).__name__}: {e}"
                rows.append(row)

            done = [r for r in rows if r["case"] == label and r["dist"] == dist]
            summary = ", ".join(f"{r['method']}: " + (f"cos {r['cos']:.5f}" if "cos" in r
                                                      else short(r["error"], 40)) for r in done)
            print(f"[{time.time() - t_start:6.1f}s] {label} {dist}: {summary}", file=sys.stderr)
            del q, k, v, ref_out, ref_lse
            torch.cuda.empty_cache()

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "rows": rows}, f, indent=1, default=str)

    print(f"\nattention accuracy vs float64 — {env['gpu']}, {args.dtype} inputs, S={args.seq}, "
          f"sagejit {version}\n")
    print("| case | dist | method | cosine | rel L1 | RMSE | LSE max abs |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            cells = [short(r["error"]), "", "", ""]
        else:
            lse = fmt(r.get("lse_max_abs"), "e") if "lse_max_abs" in r else (
                "n/a" if "lse_error" in r else "")
            cells = [fmt(r["cos"], "cos"), fmt(r["rel_l1"], "e"), fmt(r["rmse"], "e"), lse]
        print(f"| {r['case']} | {r['dist']} | {r['method']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

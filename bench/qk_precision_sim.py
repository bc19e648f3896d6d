#!/usr/bin/env python3
"""How much QKᵀ precision the FP16 P·V mode needs for relative L1 <= 0.005 (issue 3), by float64
simulation (numpy only, no GPU).

Q and K are quantized to INT8 in groups like the per-thread granularity (Q: one scale per 2 rows x D;
K: one scale per 16 keys x D after K smoothing), V is rounded to fp16, and attention is computed in
float64 against the unquantized float64 result. Variants: one INT8 term; a second INT8 term for the
residual (x - dequant(q1)) of Q, of K, or of both; finer single-term groups (one row / one key per
scale); and both residuals with the q2·k2 product left out (three INT8 products).

Run: python3 bench/qk_precision_sim.py [--seq 2048] [--heads 4]
"""

import argparse

import numpy as np


def quantize(x, rows_per_group, terms=1):
    """Sum of `terms` INT8 terms: the first with the absmax scale s of each group, each further one
    quantizing what the previous left with s / 128 (the residual is at most s / 2, so it fits INT8,
    and the products of different terms differ by powers of two)."""
    g = x.reshape(-1, rows_per_group, x.shape[1])
    amax = np.abs(g).max(axis=(1, 2), keepdims=True)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    out = np.zeros_like(g)
    for _ in range(terms):
        out += np.clip(np.rint((g - out) / scale), -127, 127) * scale
        scale = scale / 128.0
    return out.reshape(x.shape)


def attention(scores, v):
    scores = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(scores)
    return (p @ v) / p.sum(axis=1, keepdims=True)


def rel_l1(a, ref):
    return np.abs(a - ref).sum() / np.abs(ref).sum()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=128)
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    d = a.head_dim
    results = {}
    for dist in ("normal", "k_bias"):
        for _ in range(a.heads):
            q, k, v = (rng.standard_normal((a.seq, d)) for _ in range(3))
            if dist == "k_bias":
                k = k + 4.0 * rng.standard_normal((1, d))
            ref = attention(q @ k.T / np.sqrt(d), v)
            ks = k - k.mean(axis=0, keepdims=True)  # K smoothing (softmax-invariant)
            v16 = v.astype(np.float16).astype(np.float64)
            variants = {
                "one INT8 term": (quantize(q, 2), quantize(ks, 16)),
                "second term for Q": (quantize(q, 2, 2), quantize(ks, 16)),
                "second term for K": (quantize(q, 2), quantize(ks, 16, 2)),
                "second term for both": (quantize(q, 2, 2), quantize(ks, 16, 2)),
                "one term, per row/key": (quantize(q, 1), quantize(ks, 1)),
            }
            for name, (qq, kk) in variants.items():
                results.setdefault((dist, name), []).append(rel_l1(attention(qq @ kk.T / np.sqrt(d), v16), ref))
            q1, k1 = quantize(q, 2), quantize(ks, 16)
            q2, k2 = quantize(q, 2, 2) - q1, quantize(ks, 16, 2) - k1
            three = (q1 @ k1.T + q1 @ k2.T + q2 @ k1.T) / np.sqrt(d)
            results.setdefault((dist, "three products (no q2·k2)"), []).append(rel_l1(attention(three, v16), ref))
    print(f"S={a.seq} D={d}, mean over {a.heads} heads; bar for the FP16 P·V mode: 0.005")
    print("| distribution | QKᵀ | rel L1 |")
    print("|---|---|---|")
    for (dist, name), vals in results.items():
        print(f"| {dist} | {name} | {np.mean(vals):.5f} |")


if __name__ == "__main__":
    main()

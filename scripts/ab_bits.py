#!/usr/bin/env python3
"""Bit-for-bit A/B of two builds' attention outputs: for a change meant to leave every output bit
unchanged (a refactor, a skipped multiply by one), runs the same seeded inputs through each build's
libsagejit.so and compares the outputs (and LSEs) exactly.

Run from the repository root on a GPU machine:
    python3 scripts/ab_bits.py build-base build [--pv f16] [--qk int8x2]
Each build runs in a subprocess of its own (the library is loaded once per process) with
SAGEJIT_LIBRARY set to BUILD/libsagejit.so; the outputs go through a temporary file. Prints one line
per shape and exits non-zero if any output differs in any bit.
"""

import argparse
import os
import subprocess
import sys
import tempfile

SHAPES = [  # (B, H, S, D, causal); S not a multiple of 128 exercises the tail block
    (2, 8, 1000, 64, False), (2, 8, 1000, 64, True), (1, 8, 4096, 64, False),
    (2, 8, 1000, 96, False), (1, 8, 3000, 96, True),
    (2, 8, 1000, 128, False), (2, 8, 2048, 128, True), (1, 8, 4096, 128, False),
    (1, 4, 1000, 256, False), (1, 4, 2048, 256, True),
]


def run_one(out_path, pv, qk):
    import torch
    import sagejit
    results = {}
    for (B, H, S, D, causal) in SHAPES:
        g = torch.Generator(device="cuda").manual_seed(1000 * D + S + (1 if causal else 0))
        q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.float16, generator=g) for _ in range(3))
        k += 0.5 * torch.randn(1, 1, 1, D, device="cuda", dtype=torch.float16, generator=g)  # a channel bias
        out, lse = sagejit.attention(q, k, v, causal=causal, pv=pv, qk=qk, return_lse=True)
        results[(B, H, S, D, causal)] = (out.cpu(), lse.cpu())
    torch.save(results, out_path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--pv", default="default")
    ap.add_argument("--qk", default="int8")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_one(args.child, args.pv, args.qk)
        return 0
    import torch
    paths = []
    with tempfile.TemporaryDirectory() as tmp:
        for build in (args.a, args.b):
            path = os.path.join(tmp, os.path.basename(build) + ".pt")
            env = dict(os.environ, SAGEJIT_LIBRARY=os.path.abspath(os.path.join(build, "libsagejit.so")),
                       PYTHONPATH="python")
            subprocess.run([sys.executable, __file__, args.a, args.b, "--pv", args.pv, "--qk", args.qk,
                            "--child", path], env=env, check=True)
            paths.append(path)
        ra, rb = (torch.load(p) for p in paths)
    bad = 0
    for shape in SHAPES:
        (oa, la), (ob, lb) = ra[shape], rb[shape]
        same = torch.equal(oa.view(torch.int16), ob.view(torch.int16)) and torch.equal(la.view(torch.int32),
                                                                                       lb.view(torch.int32))
        diff = (oa.float() - ob.float()).abs().max().item()
        print(f"B={shape[0]} H={shape[1]} S={shape[2]} D={shape[3]} causal={shape[4]} pv={args.pv} qk={args.qk}: "
              f"{'same bits' if same else f'DIFFERENT (max |diff| {diff:.3g})'}")
        bad += not same
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

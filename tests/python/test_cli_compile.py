"""`sagejit compile --family attn`: which attention kernel it builds, and how it refuses bad flags.

Runs without a GPU (NVRTC compiles for any arch), against build/sagejit of this checkout (or
$SAGEJIT_TEST_CLI), with a cache directory of its own.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("SAGEJIT_TEST_CLI", REPO / "build" / "sagejit"))

pytestmark = pytest.mark.skipif(not CLI.exists(), reason=f"no CLI built at {CLI}")


def compile_attn(tmp_path, *flags):
    env = dict(os.environ, SAGEJIT_CACHE_DIR=str(tmp_path / "cache"))
    return subprocess.run([str(CLI), "compile", "--family", "attn", *flags], capture_output=True, text=True,
                          env=env, timeout=300)


def names(result):
    assert result.returncode == 0, result.stderr
    return [row["name"] for row in json.loads(result.stdout)]


def test_default_is_the_kernel_attention_runs(tmp_path):
    # sm_90a: the single-warpgroup wgmma kernel with fused Q and FP8 P·V (autotune/problem.cpp's
    # default_spec), not the portable kernel; the other archs keep the mma.sync kernel.
    assert names(compile_attn(tmp_path, "--arch", "sm_90a", "--json")) == [
        "attn.wgmma.d128.int8.per_thread.fused_q.fp8.none.f16.sm_90a.t64x128w4s1c3"]
    assert names(compile_attn(tmp_path, "--arch", "sm_89", "--json")) == [
        "attn.mma.d128.int8.per_thread.fp8.none.f16.sm_89.t128x64w8s2"]


def test_family_and_tile_force_a_variant(tmp_path):
    assert names(compile_attn(tmp_path, "--arch", "sm_90a", "--attn-family", "wgmma", "--tile", "t64x128w4s1c2",
                              "--json")) == ["attn.wgmma.d128.int8.per_thread.fused_q.fp8.none.f16.sm_90a.t64x128w4s1c2"]
    # A tile alone means the mma family; the older tile form without the leading t still reads.
    assert names(compile_attn(tmp_path, "--arch", "sm_90a", "--tile", "128x64w8s2", "--json")) == [
        "attn.mma.d128.int8.per_thread.f16.none.f16.sm_90a.t128x64w8s2"]


@pytest.mark.parametrize("flags, message", [
    (["--seq", "0"], "argument `--seq`: must be at least 1"),
    (["--seq", "-1"], "argument `--seq`: must be at least 1"),
    (["--attn-family", "tpu"], "argument `--attn-family`: must be mma or wgmma"),
    (["--tile", "64x"], "argument `--tile`: must read [t]CTA_QxCTA_KwWARPSsSTAGES[cMIN_CTAS][p], e.g. t128x64w8s2 or "
                        "t64x128w4s1c3 (got '64x')"),
    # A tile alone means mma: a wgmma-only tile says which flag is missing.
    (["--tile", "t64x128w4s1c3"], "add --attn-family wgmma"),
    (["--attn-family", "wgmma", "--tile", "t64x128w4s1c5"], "argument `--tile`: the single-warpgroup wgmma kernel"),
    (["--attn-family", "wgmma", "--arch", "sm_89"], "argument `--attn-family`: wgmma needs sm_90a"),
    # The spec's own rules name the flag that sets the field, not the field.
    (["--head-dim", "80"], "argument `--head-dim`: must be one of 64, 96, 128, 256 (got 80)"),
    (["--out", "int8x2", "--pv", "fp8"], "argument `--out`: int8x2 (the precise mode's two-term Q Kᵀ) needs f16 P·V"),
    (["--head-dim", "256", "--attn-family", "wgmma", "--tile", "t64x128w4s1c2", "--pv", "f16"],
     "argument `--pv`: the single-warpgroup wgmma kernel at head_dim 256 needs fp8 P·V (got f16)"),
    (["--head-dim", "256", "--attn-family", "wgmma", "--tile", "t64x128w4s1c3"],
     "argument `--tile`: tile.min_ctas_per_sm: the single-warpgroup wgmma kernel at head_dim 256"),
    (["--all", "--tile", "t128x64w8s2"], "argument `--all`: builds every variant"),
])
def test_bad_flags_are_refused_by_name(tmp_path, flags, message):
    r = compile_attn(tmp_path, "--arch", "sm_90a", *flags)
    assert r.returncode != 0
    assert message in r.stderr

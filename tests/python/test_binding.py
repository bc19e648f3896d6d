"""The ctypes binding against include/sagejit/sagejit.h and build/libsagejit.so.

Runs without a GPU and without torch: struct layouts (by hand-computed offsets and by the field
order parsed from the header), enum values (parsed from the header), the logical view of NHD
tensors, the error that names every path tried, and — when the built library exports the C ABI —
a call that must fail validation without touching a GPU.
"""

import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

import sagejit  # noqa: E402  (after the path tweak, so it runs from a plain checkout)
from sagejit import _abi  # noqa: E402
from sagejit._attention import logical_view, make_tensor, packed_view  # noqa: E402

HEADER = (REPO / "include" / "sagejit" / "sagejit.h").read_text()
# The library the ABI tests load: build/ of this checkout, or $SAGEJIT_TEST_LIBRARY (another build
# directory of the same checkout).
BUILT = Path(os.environ.get("SAGEJIT_TEST_LIBRARY", REPO / "build" / "libsagejit.so"))


def offsets(struct):
    return {name: getattr(struct, name).offset for name, _ in struct._fields_}


def test_import_needs_no_torch():
    # CI has no torch: the package must import without it (attention() imports it lazily).
    code = ("import sys; sys.path.insert(0, %r); import sagejit; "
            "assert 'torch' not in sys.modules, 'sagejit imported torch'" % str(REPO / "python"))
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tensor_layout():
    # void* at 0; int32 dtype at 8; 4 bytes of padding so the int64s are 8-aligned from 16.
    expected = {"data": 0, "dtype": 8, "batch": 16, "heads": 24, "seq": 32, "dim": 40,
                "stride_b": 48, "stride_h": 56, "stride_s": 64, "stride_d": 72}
    assert offsets(_abi.Tensor) == expected
    assert ctypes.sizeof(_abi.Tensor) == 80


def test_options_layout():
    # Six int32, one float, five int32: twelve 4-byte fields, no padding.
    names = ["mask", "qk_type", "pv_type", "granularity", "smooth_q", "smooth_k", "sm_scale",
             "cta_q", "cta_k", "warps_q", "stages", "reuse_quantized"]
    assert offsets(_abi.AttentionOptions) == {n: 4 * i for i, n in enumerate(names)}
    assert ctypes.sizeof(_abi.AttentionOptions) == 48
    assert _abi.AttentionOptions.sm_scale.size == 4  # float, not double


def header_fields(struct_name):
    """(type, name) of each field of `typedef struct struct_name {...}`, in order."""
    body = re.search(r"typedef struct %s \{(.*?)\}" % struct_name, HEADER, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    fields = []
    for decl in body.split(";"):
        decl = decl.strip()
        if not decl:
            continue
        m = re.match(r"(void\*|const int32_t\*|int32_t|int64_t|float)\s*(.*)", decl)
        assert m, f"unexpected declaration in {struct_name}: {decl!r}"
        for name in m.group(2).split(","):
            fields.append((m.group(1), name.strip()))
    return fields


CTYPE_OF = {"void*": ctypes.c_void_p, "const int32_t*": ctypes.c_void_p, "int32_t": ctypes.c_int32,
            "int64_t": ctypes.c_int64, "float": ctypes.c_float}


def test_varlen_layout():
    # int64 batch, four pointers, two int64 maxima: 56 bytes, no padding.
    names = ["batch", "cu_seqlens_q", "cu_seqlens_k", "cu_seqlens_q_device", "cu_seqlens_k_device",
             "max_seqlen_q", "max_seqlen_k"]
    assert offsets(_abi.Varlen) == {n: 8 * i for i, n in enumerate(names)}
    assert ctypes.sizeof(_abi.Varlen) == 56


def test_packed_view_is_one_batch_of_all_tokens():
    # A packed [total=7, H=3, D=8] tensor, contiguous: strides (24, 8, 1).
    shape, strides = packed_view((7, 3, 8), (24, 8, 1))
    assert shape == (1, 3, 7, 8) and strides == (0, 8, 24, 1)


@pytest.mark.parametrize("struct, name", [(_abi.Tensor, "sagejit_tensor"),
                                          (_abi.AttentionOptions, "sagejit_attention_options"),
                                          (_abi.Varlen, "sagejit_varlen")])
def test_struct_fields_match_header(struct, name):
    want = [(n, CTYPE_OF[t]) for t, n in header_fields(name)]
    assert list(struct._fields_) == want


def test_enums_match_header():
    values = {m.group(1): int(m.group(2))
              for m in re.finditer(r"\b(SAGEJIT_[A-Z0-9_]+)\s*=\s*(-?\d+)", HEADER)}
    ours = {f"SAGEJIT_{s.name}": s.value for s in _abi.Status}
    ours.update({
        "SAGEJIT_F16": _abi.DTYPE_F16, "SAGEJIT_BF16": _abi.DTYPE_BF16,
        "SAGEJIT_MASK_NONE": _abi.MASK_NONE, "SAGEJIT_MASK_CAUSAL": _abi.MASK_CAUSAL,
        "SAGEJIT_MASK_CAUSAL_BOTTOM_RIGHT": _abi.MASK_CAUSAL_BOTTOM_RIGHT,
        "SAGEJIT_QK_INT8": _abi.QK_INT8, "SAGEJIT_QK_INT4": _abi.QK_INT4,
        "SAGEJIT_QK_INT8X2": _abi.QK_INT8X2,
        "SAGEJIT_PV_DEFAULT": _abi.PV_DEFAULT, "SAGEJIT_PV_FP8": _abi.PV_FP8,
        "SAGEJIT_PV_F16": _abi.PV_F16,
        "SAGEJIT_PER_THREAD": _abi.PER_THREAD, "SAGEJIT_PER_WARP": _abi.PER_WARP,
        "SAGEJIT_PER_BLOCK": _abi.PER_BLOCK,
    })
    assert ours == values


def test_nhd_view_swaps_heads_and_seq():
    # An NHD tensor [B=2, S=5, H=3, D=8], contiguous: strides (120, 24, 8, 1).
    shape, strides = logical_view((2, 5, 3, 8), (120, 24, 8, 1), "NHD")
    assert shape == (2, 3, 5, 8) and strides == (120, 8, 24, 1)
    assert logical_view((2, 3, 5, 8), (120, 40, 8, 1), "HND") == ((2, 3, 5, 8), (120, 40, 8, 1))
    with pytest.raises(ValueError, match="layout"):
        logical_view((2, 3, 5, 8), (120, 40, 8, 1), "BSHD")


def test_make_tensor_fields():
    t = make_tensor(0x1000, _abi.DTYPE_BF16, (2, 3, 5, 8), (120, 8, 24, 1))
    assert (t.data, t.dtype, t.batch, t.heads, t.seq, t.dim) == (0x1000, 1, 2, 3, 5, 8)
    assert (t.stride_b, t.stride_h, t.stride_s, t.stride_d) == (120, 8, 24, 1)


def test_error_names_every_path_tried(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere" / "libsagejit.so"
    monkeypatch.setenv("SAGEJIT_LIBRARY", str(missing))
    _abi.reset()
    try:
        with pytest.raises(sagejit.SagejitError) as info:
            sagejit.version()
        assert info.value.status == sagejit.Status.NOT_AVAILABLE
        assert str(missing) in str(info.value)
        assert "SAGEJIT_LIBRARY" in str(info.value)
    finally:
        _abi.reset()


def test_error_without_env_names_checkout_and_loader(monkeypatch):
    monkeypatch.delenv("SAGEJIT_LIBRARY", raising=False)
    paths = _abi.candidate_paths()
    assert paths == [str(REPO / "build" / "libsagejit.so"), "libsagejit.so"]


def built_library():
    """The built library if it exports the C ABI, else skip with the reason."""
    if not BUILT.exists():
        pytest.skip(f"skipped: {BUILT} not built")
    lib = ctypes.CDLL(str(BUILT))
    missing = [s for s in _abi._SYMBOLS if not hasattr(lib, s)]
    if missing:
        pytest.skip(f"skipped: {BUILT} lacks the C ABI ({', '.join(missing)})")
    return BUILT


@pytest.fixture
def lib(monkeypatch):
    monkeypatch.setenv("SAGEJIT_LIBRARY", str(built_library()))
    _abi.reset()
    yield _abi.load()
    _abi.reset()


def test_version_is_a_string(lib):
    v = sagejit.version()
    assert isinstance(v, str) and v


def test_options_init_defaults(lib):
    o = _abi.AttentionOptions()
    ctypes.memset(ctypes.byref(o), 0x5A, ctypes.sizeof(o))  # garbage, so init must write
    lib.sagejit_attention_options_init(ctypes.byref(o))
    assert o.mask == _abi.MASK_NONE and o.qk_type == _abi.QK_INT8
    assert o.pv_type == _abi.PV_DEFAULT and o.granularity == _abi.PER_THREAD
    assert o.sm_scale == 0.0
    assert (o.cta_q, o.cta_k, o.warps_q, o.stages, o.reuse_quantized) == (0, 0, 0, 0, 0)


def call_raw(lib, q, k, v, out, options=None):
    ref = lambda t: None if t is None else ctypes.byref(t)  # noqa: E731
    options = options if options is not None else _abi.options_init()
    return lib.sagejit_attention(ref(q), ref(k), ref(v), ref(out), None, ctypes.byref(options),
                                 None)


SHAPE, STRIDES = (1, 2, 128, 64), (2 * 128 * 64, 128 * 64, 64, 1)


def test_null_tensor_pointers_are_an_invalid_argument(lib):
    # Checked before the driver is touched, so this holds on machines without a GPU.
    t = make_tensor(None, _abi.DTYPE_F16, SHAPE, STRIDES)
    status = call_raw(lib, None, t, t, t)
    assert status == _abi.Status.INVALID_ARGUMENT
    assert "q" in _abi.last_error(lib)  # the message names the argument
    with pytest.raises(sagejit.SagejitError) as info:
        _abi.check(lib, status)
    assert info.value.status == sagejit.Status.INVALID_ARGUMENT


def test_null_data_is_rejected(lib):
    # Valid shapes, null data. The library asks the device (its arch decides the kernel) before
    # it checks the tensors, so without a driver the call fails with NOT_AVAILABLE instead;
    # either way nothing is launched and the message says why.
    t = [make_tensor(None, _abi.DTYPE_F16, SHAPE, STRIDES) for _ in range(4)]
    status = call_raw(lib, *t)
    message = _abi.last_error(lib)
    assert status in (_abi.Status.INVALID_ARGUMENT, _abi.Status.NOT_AVAILABLE), message
    if status == _abi.Status.NOT_AVAILABLE:
        assert "driver" in message or "libcuda" in message, message
    assert message


def test_attention_rejects_bad_options_before_loading():
    # Option strings are checked in Python first; needs torch only for the import inside.
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="pv"):
        sagejit.attention(None, None, None, pv="fp4")


def test_varlen_bad_offsets_are_refused_before_the_gpu(lib):
    # The offsets are validated from their host copy before the device is asked anything, so this
    # holds on machines without a GPU: a decreasing offset is INVALID_ARGUMENT naming cu_seqlens_q.
    total_q, total_k = 3, 8
    q = make_tensor(1 << 20, _abi.DTYPE_F16, (1, 4, total_q, 64), (0, 64, 256, 1))
    k = make_tensor(1 << 21, _abi.DTYPE_F16, (1, 2, total_k, 64), (0, 64, 128, 1))
    out = make_tensor(1 << 22, _abi.DTYPE_F16, (1, 4, total_q, 64), (0, 64, 256, 1))
    cu_q = (ctypes.c_int32 * 3)(0, 5, 3)
    cu_k = (ctypes.c_int32 * 3)(0, 4, 8)
    varlen = _abi.Varlen(2, ctypes.addressof(cu_q), ctypes.addressof(cu_k), 1 << 23, 1 << 24, 5, 4)
    status = lib.sagejit_attention_varlen(ctypes.byref(q), ctypes.byref(k), ctypes.byref(k),
                                          ctypes.byref(out), None, ctypes.byref(varlen),
                                          ctypes.byref(_abi.options_init()), None)
    assert status == _abi.Status.INVALID_ARGUMENT
    assert _abi.last_error(lib).startswith("argument `cu_seqlens_q`: must be non-decreasing")
    status = lib.sagejit_attention_varlen(ctypes.byref(q), ctypes.byref(k), ctypes.byref(k),
                                          ctypes.byref(out), None, None,
                                          ctypes.byref(_abi.options_init()), None)
    assert status == _abi.Status.INVALID_ARGUMENT
    assert "varlen" in _abi.last_error(lib)


def test_attention_varlen_rejects_bad_options_before_loading():
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="causal_alignment"):
        sagejit.attention_varlen(None, None, None, None, None, causal=True,
                                 causal_alignment="middle")


def cuda_torch():
    """torch with a CUDA device and the built library, else skip with the reason."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("skipped: no GPU")
    built_library()
    return torch


def reference_varlen(torch, q, k, v, cu_q, cu_k, causal_bottom_right):
    """float64 attention per sequence (bottom-right causal when asked): out [total_q, Hq, D] and
    lse [Hq, total_q]."""
    hq, hkv, d = q.shape[1], k.shape[1], q.shape[2]
    out = torch.zeros(q.shape, dtype=torch.float64)
    lse = torch.full((hq, q.shape[0]), float("-inf"), dtype=torch.float64)
    for b in range(len(cu_q) - 1):
        q0, q1, k0, k1 = cu_q[b], cu_q[b + 1], cu_k[b], cu_k[b + 1]
        if q1 == q0 or k1 == k0:
            continue
        qs = q[q0:q1].double().cpu().transpose(0, 1)                      # [Hq, Sq, D]
        ks = k[k0:k1].double().cpu().transpose(0, 1).repeat_interleave(hq // hkv, 0)
        vs = v[k0:k1].double().cpu().transpose(0, 1).repeat_interleave(hq // hkv, 0)
        s = qs @ ks.transpose(1, 2) / d ** 0.5
        if causal_bottom_right:
            i = torch.arange(q1 - q0)[:, None]
            j = torch.arange(k1 - k0)[None, :]
            s = s.masked_fill(j > i + (k1 - k0) - (q1 - q0), float("-inf"))
        row_lse = torch.logsumexp(s, dim=-1)                              # [Hq, Sq]
        p = torch.exp(s - row_lse[..., None]).nan_to_num(0.0)
        out[q0:q1] = (p @ vs).transpose(0, 1)
        lse[:, q0:q1] = row_lse
    return out, lse


def test_attention_varlen_matches_float64_per_sequence(monkeypatch):
    torch = cuda_torch()
    monkeypatch.setenv("SAGEJIT_LIBRARY", str(BUILT))
    _abi.reset()
    gen = torch.Generator().manual_seed(3)
    lengths_q, lengths_k = [1, 17, 300, 0, 129], [40, 17, 100, 5, 0]
    cu_q = [0]
    cu_k = [0]
    for a, b in zip(lengths_q, lengths_k):
        cu_q.append(cu_q[-1] + a)
        cu_k.append(cu_k[-1] + b)
    q = torch.randn(cu_q[-1], 4, 64, generator=gen).half().cuda()
    k = torch.randn(cu_k[-1], 2, 64, generator=gen).half().cuda()
    v = torch.randn(cu_k[-1], 2, 64, generator=gen).half().cuda()
    host_q = torch.tensor(cu_q, dtype=torch.int32)
    host_k = torch.tensor(cu_k, dtype=torch.int32)
    out, lse = sagejit.attention_varlen(q, k, v, host_q.cuda(), host_k.cuda(), causal=True,
                                        causal_alignment="bottom_right", pv="f16", return_lse=True)
    ref_out, ref_lse = reference_varlen(torch, q, k, v, cu_q, cu_k, True)
    assert out.shape == q.shape and lse.shape == (4, cu_q[-1])
    assert torch.isfinite(out).all()
    for b in range(len(lengths_q)):
        o = out[cu_q[b]:cu_q[b + 1]].double().cpu().flatten()
        r = ref_out[cu_q[b]:cu_q[b + 1]].flatten()
        if r.abs().sum() == 0:  # no query rows, or no keys: exact zeros
            assert (o == 0).all(), b
            continue
        cos = torch.dot(o, r) / (o.norm() * r.norm())
        assert cos > 0.999, (b, float(cos))
    seen = torch.isfinite(ref_lse)
    assert torch.equal(torch.isfinite(lse.cpu()), seen)  # -inf exactly where a row sees no key
    assert (lse.cpu().double()[seen] - ref_lse[seen]).abs().max() < 0.05
    # The same offsets given as CPU tensors, and as a (cpu, cuda) pair: the same result, bit for bit.
    again = sagejit.attention_varlen(q, k, v, host_q, cu_k, causal=True,
                                     causal_alignment="bottom_right", pv="f16")
    pair = sagejit.attention_varlen(q, k, v, (host_q, host_q.cuda()), (host_k, host_k.cuda()),
                                    causal=True, causal_alignment="bottom_right", pv="f16")
    assert torch.equal(again, out) and torch.equal(pair, out)
    _abi.reset()

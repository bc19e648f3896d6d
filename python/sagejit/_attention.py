"""attention() and attention_varlen() for torch CUDA tensors: checks what the C library cannot
see, builds the ABI structs, calls sagejit_attention / sagejit_attention_varlen on torch's current
stream.

What is checked here: that the arguments are torch CUDA tensors of fp16/bf16, 4-D (3-D packed
[total, H, D] for varlen), on one device, that varlen offsets are int32 with a host and a device
copy, and that string options name known values (ValueError / TypeError). Everything else (shapes,
strides, alignment, GQA ratio, what the GPU supports) is the library's to validate: its
SagejitError message states the rule and the values. torch is imported at the first call, so the
package imports without it.
"""

import ctypes

from . import _abi
from ._abi import SagejitError

_LAYOUTS = ("HND", "NHD")
_ALIGNMENTS = {"top_left": _abi.MASK_CAUSAL, "bottom_right": _abi.MASK_CAUSAL_BOTTOM_RIGHT}
_QK = {"int8": _abi.QK_INT8, "int4": _abi.QK_INT4, "int8x2": _abi.QK_INT8X2}
_PV = {"default": _abi.PV_DEFAULT, "fp8": _abi.PV_FP8, "f16": _abi.PV_F16}
_GRANULARITY = {"per_thread": _abi.PER_THREAD, "per_warp": _abi.PER_WARP,
                "per_block": _abi.PER_BLOCK}


def _choice(name, value, table):
    try:
        return table[value]
    except (KeyError, TypeError):
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(map(repr, table))}") from None


def logical_view(shape, strides, layout):
    """(shape, strides) of the logical [B, H, S, D] view of a tensor stored in `layout`.

    "HND" tensors are [B, H, S, D] already; "NHD" tensors are [B, S, H, D], so heads and seq swap
    (both in shape and strides: no copy, the library reads any strides).
    """
    if layout == "HND":
        return tuple(shape), tuple(strides)
    if layout == "NHD":
        b, s, h, d = shape
        sb, ss, sh, sd = strides
        return (b, h, s, d), (sb, sh, ss, sd)
    raise ValueError(f"layout={layout!r}: expected 'HND' ([B, H, S, D]) or 'NHD' ([B, S, H, D])")


def make_tensor(data_ptr, dtype_code, shape, strides):
    """A sagejit_tensor from a logical [B, H, S, D] shape and element strides."""
    t = _abi.Tensor()
    t.data = data_ptr
    t.dtype = dtype_code
    t.batch, t.heads, t.seq, t.dim = shape
    t.stride_b, t.stride_h, t.stride_s, t.stride_d = strides
    return t


def _cuda_half_dtype(torch, name, x):
    """The ABI dtype code of a CUDA fp16/bf16 tensor; TypeError/ValueError naming `name` otherwise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_cuda:
        raise ValueError(f"{name}: expected a CUDA tensor, got device {x.device}")
    if x.dtype == torch.float16:
        return _abi.DTYPE_F16
    if x.dtype == torch.bfloat16:
        return _abi.DTYPE_BF16
    raise ValueError(f"{name}: expected torch.float16 or torch.bfloat16, got {x.dtype}")


def _torch_tensor(torch, name, x, layout):
    code = _cuda_half_dtype(torch, name, x)
    if x.dim() != 4:
        raise ValueError(f"{name}: expected 4 dimensions ({layout}), got shape {tuple(x.shape)}")
    shape, strides = logical_view(x.shape, x.stride(), layout)
    return make_tensor(x.data_ptr(), code, shape, strides)


def _check_options(causal, causal_alignment, qk, pv, granularity, sm_scale, tile):
    """The option values of the C struct, from attention()'s keyword arguments (ValueError if bad)."""
    causal_mask = _choice("causal_alignment", causal_alignment, _ALIGNMENTS)
    mask = causal_mask if causal else _abi.MASK_NONE
    qk_type = _choice("qk", qk, _QK)
    pv_type = _choice("pv", pv, _PV)
    gran = _choice("granularity", granularity, _GRANULARITY)
    # 0 means "1/sqrt(D)" in the C struct, so an explicit 0 (or a negative scale) cannot be told
    # apart from the default there: reject it here.
    if sm_scale is not None and not sm_scale > 0:
        raise ValueError(f"sm_scale={sm_scale!r}: expected a positive number or None (1/sqrt(D))")
    if tile is not None and len(tile) != 4:
        raise ValueError(f"tile={tile!r}: expected (cta_q, cta_k, warps_q, stages) or None")
    return mask, qk_type, pv_type, gran


def _fill_options(lib, mask, qk_type, pv_type, gran, smooth_q, smooth_k, sm_scale, tile,
                  reuse_quantized):
    options = _abi.AttentionOptions()
    lib.sagejit_attention_options_init(ctypes.byref(options))
    options.mask = mask
    options.qk_type = qk_type
    options.pv_type = pv_type
    options.granularity = gran
    options.smooth_q = int(bool(smooth_q))
    options.smooth_k = int(bool(smooth_k))
    options.sm_scale = 0.0 if sm_scale is None else float(sm_scale)
    if tile is not None:
        options.cta_q, options.cta_k, options.warps_q, options.stages = (int(x) for x in tile)
    options.reuse_quantized = int(bool(reuse_quantized))
    return options


def attention(q, k, v, *, layout="HND", causal=False, causal_alignment="top_left", sm_scale=None,
              qk="int8", pv="default", granularity="per_thread", smooth_q=False, smooth_k=True,
              tile=None, return_lse=False, out=None, reuse_quantized=False):
    """out = softmax(q kᵀ · sm_scale) v, quantized as SageAttention2 (INT8 QK, FP8 or F16 PV).

    q [B, Hq, Sq, D], k and v [B, Hkv, Skv, D] for layout "HND"; [B, S, H, D] for "NHD".
    fp16 or bf16 CUDA tensors; Hq % Hkv == 0 (grouped-query attention).

    causal: mask keys after the query; causal_alignment "top_left" (query i sees keys j <= i) or
        "bottom_right" (j <= i + Skv - Sq, as for decoding with a KV cache).
    sm_scale: None for 1/sqrt(D).
    qk: "int8", "int4" (INT4 tensor cores on sm_80/86/89, emulated elsewhere) or "int8x2" (two
        int8 terms, three INT8 MMAs per product; with pv="f16", the precise mode).
    pv: "default" (FP8 where the GPU has FP8 mma, else f16; f16 with qk="int8x2"), "fp8" or "f16".
    granularity: scale groups of Q and K: "per_thread" (SageAttention2), "per_warp", "per_block".
    smooth_q: subtract each Q block's mean and add the ΔS correction back (SageAttention2 §3.2).
    smooth_k: subtract K's per-channel mean (exact; the accuracy fix for biased keys).
    tile: None for the tuned/heuristic choice, else (cta_q, cta_k, warps_q, stages).
    return_lse: also return the natural-log log-sum-exp per row, float32 [B, Hq, Sq].
    out: preallocated output (q's shape/dtype in `layout`); allocated like q if None.
    reuse_quantized: benchmarking only — q, k, v are unchanged since the previous call on this
        stream with the same shapes and options, so only the attention kernel runs.

    Returns out, or (out, lse) with return_lse. Raises SagejitError(status, message) on failure.
    """
    import torch  # lazy: the package imports without torch

    # Option strings first: cheap, and a typo should not wait for the library to load.
    mask, qk_type, pv_type, gran = _check_options(causal, causal_alignment, qk, pv, granularity,
                                                  sm_scale, tile)
    if layout not in _LAYOUTS:
        raise ValueError(f"layout={layout!r}: expected 'HND' ([B, H, S, D]) or 'NHD' ([B, S, H, D])")

    tq = _torch_tensor(torch, "q", q, layout)
    tk = _torch_tensor(torch, "k", k, layout)
    tv = _torch_tensor(torch, "v", v, layout)
    if k.device != q.device or v.device != q.device:
        raise ValueError(f"q, k, v on different devices: {q.device}, {k.device}, {v.device}")
    if out is None:
        out = torch.empty_like(q)
    to = _torch_tensor(torch, "out", out, layout)
    if out.device != q.device:
        raise ValueError(f"out on {out.device}, q on {q.device}")

    lse = None
    lse_ptr = None
    if return_lse:
        b, hq, sq, _ = (tq.batch, tq.heads, tq.seq, tq.dim)
        lse = torch.empty((b, hq, sq), dtype=torch.float32, device=q.device)
        lse_ptr = lse.data_ptr()

    lib = _abi.load()
    options = _fill_options(lib, mask, qk_type, pv_type, gran, smooth_q, smooth_k, sm_scale, tile,
                            reuse_quantized)

    # The library works in the calling thread's current context; the device guard makes q's
    # device (its primary context, the one torch uses) current for a tensor not on device 0.
    with torch.cuda.device(q.device):
        stream = torch.cuda.current_stream(q.device).cuda_stream
        status = lib.sagejit_attention(ctypes.byref(tq), ctypes.byref(tk), ctypes.byref(tv),
                                       ctypes.byref(to), lse_ptr, ctypes.byref(options), stream)
    _abi.check(lib, status)
    return (out, lse) if return_lse else out


# ---- varlen --------------------------------------------------------------------------------------


def packed_view(shape, strides):
    """(shape, strides) of the logical [1, H, total, D] view of a packed [total, H, D] tensor.

    Batch 1 holding every token; its batch stride is never used, so it is 0.
    """
    total, h, d = shape
    st, sh, sd = strides
    return (1, h, total, d), (0, sh, st, sd)


def _packed_tensor(torch, name, x):
    code = _cuda_half_dtype(torch, name, x)
    if x.dim() != 3:
        raise ValueError(f"{name}: expected 3 dimensions [total, H, D] (packed varlen), got shape "
                         f"{tuple(x.shape)}")
    shape, strides = packed_view(tuple(x.shape), x.stride())
    return make_tensor(x.data_ptr(), code, shape, strides)


def _offsets(torch, name, cu, device):
    """(host int32 tensor, device int32 tensor) of cumulative offsets given as a CUDA tensor, a CPU
    tensor or list, or a (host, device) pair.

    A CUDA tensor alone is read back to the host (one device synchronization: sagejit validates
    and plans from the host copy); a CPU tensor or list is copied to the device asynchronously
    through pinned memory; a pair is used as is (the caller vouches that both hold the same values).
    """
    if isinstance(cu, tuple):
        if len(cu) != 2:
            raise ValueError(f"{name}: expected a tensor, a list, or a (host, device) pair")
        host, dev = cu
    elif isinstance(cu, torch.Tensor) and cu.is_cuda:
        host, dev = cu.cpu(), cu
    else:
        host = cu if isinstance(cu, torch.Tensor) else torch.tensor(list(cu), dtype=torch.int32)
        dev = None
    if not isinstance(host, torch.Tensor) or host.is_cuda:
        raise ValueError(f"{name}: the host copy must be a CPU tensor")
    if host.dtype != torch.int32 or host.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D torch.int32 tensor [batch + 1], got {host.dtype} of "
                         f"shape {tuple(host.shape)}")
    host = host.contiguous()
    if dev is None:
        dev = host.pin_memory().to(device, non_blocking=True)
    if not isinstance(dev, torch.Tensor) or not dev.is_cuda or dev.device != device:
        raise ValueError(f"{name}: the device copy must be a CUDA tensor on {device}")
    if dev.dtype != torch.int32 or tuple(dev.shape) != tuple(host.shape) or not dev.is_contiguous():
        raise ValueError(f"{name}: the device copy must be a contiguous int32 tensor like the host "
                         f"copy {tuple(host.shape)}")
    return host, dev


def attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None, *,
                     causal=False, causal_alignment="top_left", sm_scale=None, qk="int8",
                     pv="default", granularity="per_thread", smooth_q=False, smooth_k=True,
                     tile=None, return_lse=False, out=None):
    """Attention over a packed variable-length batch, flash_attn_varlen_func's convention.

    q [total_q, Hq, D], k and v [total_kv, Hkv, D]: fp16 or bf16 CUDA tensors holding B sequences
    back to back (any strides with a contiguous last dimension). Sequence b owns rows
    cu_seqlens_q[b]:cu_seqlens_q[b + 1] of q and out and cu_seqlens_k[b]:cu_seqlens_k[b + 1] of k
    and v, and is attended on its own (causal masks align per sequence).

    cu_seqlens_q, cu_seqlens_k: int32 [B + 1], starting at 0, ending at the total token count;
        a CUDA tensor (read back to the host: one device synchronization), a CPU tensor or list
        (copied to the device asynchronously), or a (cpu, cuda) pair with the same values (no copy,
        no synchronization: the fastest for repeated calls).
    max_seqlen_q, max_seqlen_k: at least the longest sequence (None: computed from the offsets).
    Other options as attention(). return_lse gives float32 [Hq, total_q] (packed, as flash-attn's
    varlen LSE); a sequence with queries but no keys gets output 0 and LSE -inf.

    Returns out ([total_q, Hq, D], like q), or (out, lse). Raises SagejitError on failure; a bad
    offset is INVALID_ARGUMENT naming it. Runs on the portable mma.sync kernel on every GPU for now.
    """
    import torch  # lazy: the package imports without torch

    mask, qk_type, pv_type, gran = _check_options(causal, causal_alignment, qk, pv, granularity,
                                                  sm_scale, tile)
    tq = _packed_tensor(torch, "q", q)
    tk = _packed_tensor(torch, "k", k)
    tv = _packed_tensor(torch, "v", v)
    if k.device != q.device or v.device != q.device:
        raise ValueError(f"q, k, v on different devices: {q.device}, {k.device}, {v.device}")
    host_q, dev_q = _offsets(torch, "cu_seqlens_q", cu_seqlens_q, q.device)
    host_k, dev_k = _offsets(torch, "cu_seqlens_k", cu_seqlens_k, q.device)
    if host_q.numel() != host_k.numel() or host_q.numel() == 0:
        raise ValueError(f"cu_seqlens_q and cu_seqlens_k: expected [batch + 1] entries each, got "
                         f"{host_q.numel()} and {host_k.numel()}")
    if max_seqlen_q is None:
        max_seqlen_q = int((host_q[1:] - host_q[:-1]).max()) if host_q.numel() > 1 else 0
    if max_seqlen_k is None:
        max_seqlen_k = int((host_k[1:] - host_k[:-1]).max()) if host_k.numel() > 1 else 0
    if out is None:
        out = torch.empty_like(q)
    to = _packed_tensor(torch, "out", out)
    if out.device != q.device:
        raise ValueError(f"out on {out.device}, q on {q.device}")

    lse = None
    lse_ptr = None
    if return_lse:
        lse = torch.empty((tq.heads, tq.seq), dtype=torch.float32, device=q.device)
        lse_ptr = lse.data_ptr()

    varlen = _abi.Varlen()
    varlen.batch = host_q.numel() - 1
    varlen.cu_seqlens_q, varlen.cu_seqlens_k = host_q.data_ptr(), host_k.data_ptr()
    varlen.cu_seqlens_q_device, varlen.cu_seqlens_k_device = dev_q.data_ptr(), dev_k.data_ptr()
    varlen.max_seqlen_q, varlen.max_seqlen_k = int(max_seqlen_q), int(max_seqlen_k)

    lib = _abi.load()
    options = _fill_options(lib, mask, qk_type, pv_type, gran, smooth_q, smooth_k, sm_scale, tile,
                            False)
    with torch.cuda.device(q.device):
        stream = torch.cuda.current_stream(q.device).cuda_stream
        status = lib.sagejit_attention_varlen(ctypes.byref(tq), ctypes.byref(tk), ctypes.byref(tv),
                                              ctypes.byref(to), lse_ptr, ctypes.byref(varlen),
                                              ctypes.byref(options), stream)
    _abi.check(lib, status)
    return (out, lse) if return_lse else out

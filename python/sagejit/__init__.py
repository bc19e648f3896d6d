"""sagejit: SageAttention2-style quantized attention, generated and compiled at run time (NVRTC).

A thin ctypes binding of the C ABI in include/sagejit/sagejit.h (libsagejit.so). The library is
found through $SAGEJIT_LIBRARY, else the build/ folder of this repository checkout, else the
dynamic loader; it is loaded at the first call, so importing never fails (see _abi.py).

    import sagejit
    out = sagejit.attention(q, k, v, causal=True)          # torch fp16/bf16 CUDA tensors
    out = sagejit.attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k)   # packed [total, H, D]
"""

from . import _abi
from ._abi import SagejitError, Status
from ._attention import attention, attention_varlen

__all__ = ["attention", "attention_varlen", "version", "SagejitError", "Status"]


def version():
    """The library's version string (loads the library)."""
    lib = _abi.load()
    return lib.sagejit_version().decode("utf-8", errors="replace")

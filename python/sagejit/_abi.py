"""The C ABI of include/sagejit/sagejit.h, mirrored with ctypes, and the loading of libsagejit.so.

This module owns three things: the enum values and struct layouts (field for field as in the
header; tests/python/test_binding.py checks both against the header), finding and loading the
library, and turning a non-zero status into SagejitError.

How it fails: importing never fails. The library is loaded at the first call; when it cannot be
found, that call raises SagejitError(NOT_AVAILABLE) naming every path tried and why each failed,
so `import sagejit` works on machines without the library (or without a GPU, or without torch).
"""

import ctypes
import enum
import os
import threading
from pathlib import Path

# ---- enums (sagejit.h) -------------------------------------------------------------------------


class Status(enum.IntEnum):
    OK = 0
    INVALID_ARGUMENT = 1
    NOT_AVAILABLE = 2
    CUDA_ERROR = 3
    COMPILE_ERROR = 4
    CACHE_ERROR = 5
    INTERNAL = 6


DTYPE_F16 = 0
DTYPE_BF16 = 1

MASK_NONE = 0
MASK_CAUSAL = 1
MASK_CAUSAL_BOTTOM_RIGHT = 2

QK_INT8 = 0
QK_INT4 = 1
QK_INT8X2 = 2

PV_DEFAULT = -1
PV_FP8 = 0
PV_F16 = 1

PER_THREAD = 0
PER_WARP = 1
PER_BLOCK = 2


# ---- structs (sagejit.h) -----------------------------------------------------------------------


class Tensor(ctypes.Structure):
    """sagejit_tensor: a logical [batch, heads, seq, dim] view with element strides."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("batch", ctypes.c_int64),
        ("heads", ctypes.c_int64),
        ("seq", ctypes.c_int64),
        ("dim", ctypes.c_int64),
        ("stride_b", ctypes.c_int64),
        ("stride_h", ctypes.c_int64),
        ("stride_s", ctypes.c_int64),
        ("stride_d", ctypes.c_int64),
    ]


class AttentionOptions(ctypes.Structure):
    """sagejit_attention_options; fill with defaults via options_init()."""

    _fields_ = [
        ("mask", ctypes.c_int32),
        ("qk_type", ctypes.c_int32),
        ("pv_type", ctypes.c_int32),
        ("granularity", ctypes.c_int32),
        ("smooth_q", ctypes.c_int32),
        ("smooth_k", ctypes.c_int32),
        ("sm_scale", ctypes.c_float),
        ("cta_q", ctypes.c_int32),
        ("cta_k", ctypes.c_int32),
        ("warps_q", ctypes.c_int32),
        ("stages", ctypes.c_int32),
        ("reuse_quantized", ctypes.c_int32),
    ]


class Varlen(ctypes.Structure):
    """sagejit_varlen: the offsets of a packed variable-length batch, host and device copies."""

    _fields_ = [
        ("batch", ctypes.c_int64),
        ("cu_seqlens_q", ctypes.c_void_p),
        ("cu_seqlens_k", ctypes.c_void_p),
        ("cu_seqlens_q_device", ctypes.c_void_p),
        ("cu_seqlens_k_device", ctypes.c_void_p),
        ("max_seqlen_q", ctypes.c_int64),
        ("max_seqlen_k", ctypes.c_int64),
    ]


# ---- errors ------------------------------------------------------------------------------------


class SagejitError(RuntimeError):
    """A failed sagejit call: `status` (a Status) and the library's whole `message`."""

    def __init__(self, status, message):
        self.status = Status(status) if status in Status._value2member_map_ else status
        self.message = message
        name = self.status.name if isinstance(self.status, Status) else f"status {status}"
        super().__init__(f"{name}: {message}")


# ---- loading -----------------------------------------------------------------------------------

_LIBRARY_ENV = "SAGEJIT_LIBRARY"
_lock = threading.Lock()
_lib = None


def candidate_paths():
    """Where the library is looked for, in order.

    An explicit $SAGEJIT_LIBRARY is the only candidate: when a user names a build, silently
    loading a different one would make every measurement a lie. Otherwise the build folder of a
    repository checkout (python/sagejit/../../build), then the dynamic loader's search path.
    """
    explicit = os.environ.get(_LIBRARY_ENV)
    if explicit:
        return [explicit]
    checkout = Path(__file__).resolve().parent.parent.parent / "build" / "libsagejit.so"
    return [str(checkout), "libsagejit.so"]


def _declare(lib):
    """Set argument and result types, so ctypes neither truncates pointers nor guesses ints."""
    lib.sagejit_attention_options_init.argtypes = [ctypes.POINTER(AttentionOptions)]
    lib.sagejit_attention_options_init.restype = None
    tensor_p = ctypes.POINTER(Tensor)
    # lse is `float*` in C; declared as void* here so a torch data_ptr() (an int) passes as is.
    lib.sagejit_attention.argtypes = [tensor_p, tensor_p, tensor_p, tensor_p, ctypes.c_void_p,
                                      ctypes.POINTER(AttentionOptions), ctypes.c_void_p]
    lib.sagejit_attention.restype = ctypes.c_int
    lib.sagejit_attention_varlen.argtypes = [tensor_p, tensor_p, tensor_p, tensor_p, ctypes.c_void_p,
                                             ctypes.POINTER(Varlen), ctypes.POINTER(AttentionOptions),
                                             ctypes.c_void_p]
    lib.sagejit_attention_varlen.restype = ctypes.c_int
    lib.sagejit_last_error.argtypes = []
    lib.sagejit_last_error.restype = ctypes.c_char_p
    lib.sagejit_version.argtypes = []
    lib.sagejit_version.restype = ctypes.c_char_p


_SYMBOLS = ("sagejit_attention_options_init", "sagejit_attention", "sagejit_attention_varlen",
            "sagejit_last_error", "sagejit_version")


def load():
    """The loaded library (loaded once per process); SagejitError(NOT_AVAILABLE) if none."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        for path in candidate_paths():
            # A relative bare name goes to the loader; a path that does not exist is reported as
            # such rather than with dlopen's vaguer message.
            if os.sep in path and not os.path.exists(path):
                tried.append(f"{path} (no such file)")
                continue
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                tried.append(f"{path} ({e})")
                continue
            missing = [s for s in _SYMBOLS if not hasattr(lib, s)]
            if missing:
                tried.append(f"{path} (lacks the C ABI: {', '.join(missing)})")
                continue
            _declare(lib)
            _lib = lib
            return lib
        hint = f"set {_LIBRARY_ENV} to the path of libsagejit.so"
        if os.environ.get(_LIBRARY_ENV):
            hint = f"{_LIBRARY_ENV} names a library that could not be loaded"
        raise SagejitError(Status.NOT_AVAILABLE,
                           "libsagejit.so not loaded; tried: " + "; ".join(tried) + f" — {hint}")


def reset():
    """Forget the loaded library so the next call searches again (tests change the env)."""
    global _lib
    with _lock:
        _lib = None


def last_error(lib):
    raw = lib.sagejit_last_error()
    return raw.decode("utf-8", errors="replace") if raw else ""


def check(lib, status):
    """Raise SagejitError with the calling thread's message when status is not OK."""
    if status != Status.OK:
        raise SagejitError(status, last_error(lib))


def options_init():
    lib = load()
    options = AttentionOptions()
    lib.sagejit_attention_options_init(ctypes.byref(options))
    return options

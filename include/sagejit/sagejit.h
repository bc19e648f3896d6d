/* sagejit.h — the C ABI of sagejit, for Python (ctypes) and other bindings.
 *
 * Every function returns a status (0 = ok, see sagejit_status); on failure the calling thread's
 * sagejit_last_error() holds the whole message (argument and rule, driver call and code, NVRTC
 * log). Nothing is launched or written when a call fails validation.
 *
 * Tensors are logical [batch, heads, seq, dim] views with element strides (HND and NHD are both
 * strides), channel dimension contiguous, rows 16-byte aligned. All pointers are device pointers
 * in the calling thread's current CUDA context (device 0's primary context if there is none).
 */
#ifndef SAGEJIT_SAGEJIT_H
#define SAGEJIT_SAGEJIT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sagejit_status {
  SAGEJIT_OK = 0,
  SAGEJIT_INVALID_ARGUMENT = 1,
  SAGEJIT_NOT_AVAILABLE = 2,
  SAGEJIT_CUDA_ERROR = 3,
  SAGEJIT_COMPILE_ERROR = 4,
  SAGEJIT_CACHE_ERROR = 5,
  SAGEJIT_INTERNAL = 6
};

enum sagejit_dtype { SAGEJIT_F16 = 0, SAGEJIT_BF16 = 1 };
enum sagejit_mask { SAGEJIT_MASK_NONE = 0, SAGEJIT_MASK_CAUSAL = 1, SAGEJIT_MASK_CAUSAL_BOTTOM_RIGHT = 2 };
/* INT8X2: two int8 terms per element (value and rounding residual), three INT8 MMAs per product —
 * with SAGEJIT_PV_F16, the precise mode. */
enum sagejit_qk_type { SAGEJIT_QK_INT8 = 0, SAGEJIT_QK_INT4 = 1, SAGEJIT_QK_INT8X2 = 2 };
enum sagejit_pv_type { SAGEJIT_PV_DEFAULT = -1, SAGEJIT_PV_FP8 = 0, SAGEJIT_PV_F16 = 1 };
enum sagejit_granularity { SAGEJIT_PER_THREAD = 0, SAGEJIT_PER_WARP = 1, SAGEJIT_PER_BLOCK = 2 };

typedef struct sagejit_tensor {
  void* data;
  int32_t dtype; /* sagejit_dtype */
  int64_t batch, heads, seq, dim;
  int64_t stride_b, stride_h, stride_s, stride_d; /* elements */
} sagejit_tensor;

typedef struct sagejit_attention_options {
  int32_t mask;        /* sagejit_mask */
  int32_t qk_type;     /* sagejit_qk_type */
  int32_t pv_type;     /* sagejit_pv_type; DEFAULT picks FP8 where it runs on tensor cores (sm_89,
                        * sm_120; sm_90a through its wgmma kernel), else F16; F16 with QK_INT8X2 */
  int32_t granularity; /* sagejit_granularity */
  int32_t smooth_q;    /* subtract each Q block's mean (SageAttention2 §3.2), add ΔS back */
  int32_t smooth_k;    /* subtract K's channel mean (exact for the output) */
  float sm_scale;      /* 0: 1/sqrt(dim) */
  /* Tile; 0 in every field picks the heuristic default for the GPU and head dim. */
  int32_t cta_q, cta_k, warps_q, stages;
  /* Benchmarking only: q, k and v are unchanged since the previous call on this stream with the
   * same shapes and options, so only the attention kernel runs (kernel-only timing). */
  int32_t reuse_quantized;
} sagejit_attention_options;

void sagejit_attention_options_init(sagejit_attention_options* options);

/* out = softmax(q kᵀ · sm_scale) v, quantized as SageAttention2. q [B, Hq, Sq, D], k and v
 * [B, Hkv, Skv, D] with Hq % Hkv == 0, out [B, Hq, Sq, D] of q's dtype, not overlapping the inputs.
 * lse: null, or float [B, Hq, Sq] contiguous, receiving the natural-log log-sum-exp of each row.
 * stream: a CUstream (null: the legacy default stream). Compiles the kernels on first use. */
int sagejit_attention(const sagejit_tensor* q, const sagejit_tensor* k, const sagejit_tensor* v,
                      const sagejit_tensor* out, float* lse, const sagejit_attention_options* options,
                      void* stream);

/* A variable-length packed batch (flash-attn's varlen convention): `batch` sequences stored back to
 * back. cu_seqlens_q / cu_seqlens_k are [batch + 1] int32 prefix sums of the sequence lengths,
 * starting at 0 and ending at the total token count, each given twice with the same values: in host
 * memory (validated and planned from during the call, without a device synchronization) and in
 * device memory (read by the kernels; keep it unchanged until they have run). max_seqlen_q / _k: at
 * least the longest sequence (the workspace and grid are sized by them). */
typedef struct sagejit_varlen {
  int64_t batch;
  const int32_t* cu_seqlens_q;        /* host */
  const int32_t* cu_seqlens_k;        /* host */
  const int32_t* cu_seqlens_q_device; /* device */
  const int32_t* cu_seqlens_k_device; /* device */
  int64_t max_seqlen_q, max_seqlen_k;
} sagejit_varlen;

/* Attention over a varlen batch: q and out are packed [1, Hq, total_q, D] views (batch 1, seq the
 * total token count; a [total, H, D] tensor has stride_h = D, stride_s = H·D), k and v
 * [1, Hkv, total_kv, D]. Sequence b is attended on its own (causal masks aligned per sequence).
 * lse: null, or float [Hq, total_q] contiguous (packed, as flash-attn's varlen LSE). A sequence with
 * queries but no keys gets output 0 and LSE -inf. The offsets are checked before the GPU is touched;
 * a bad one is SAGEJIT_INVALID_ARGUMENT naming it. Runs on the portable mma.sync kernel on every
 * arch for now. */
int sagejit_attention_varlen(const sagejit_tensor* q, const sagejit_tensor* k, const sagejit_tensor* v,
                             const sagejit_tensor* out, float* lse, const sagejit_varlen* varlen,
                             const sagejit_attention_options* options, void* stream);

/* The message of the calling thread's last failed call ("" if none). */
const char* sagejit_last_error(void);
const char* sagejit_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SAGEJIT_SAGEJIT_H */

// tensor_map.hpp — TMA descriptors (CUtensorMap) for the sm_90a kernels, encoded on the host.
//
// Encoding is a driver call that neither allocates device memory nor synchronizes, so it can run
// on every call (and during graph capture). Errors are CudaErrors naming cuTensorMapEncodeTiled.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "sagejit/quantize.hpp"
#include "sagejit/tensor.hpp"

namespace sagejit {

// The swizzle whose span is `bytes` (128, 64 or 32); anything else: none.
CUtensorMapSwizzle tensor_map_swizzle(int bytes);

// A 2-D uint8 map: `rows` rows of `row_bytes` bytes of which `inner` are used, read in boxes of
// box_inner x box_rows with the given swizzle; reads outside the tensor return zeros.
CUtensorMap tensor_map_u8(const void* base, std::uint64_t inner, std::uint64_t rows, std::uint64_t row_bytes,
                          std::uint32_t box_inner, std::uint32_t box_rows, CUtensorMapSwizzle swizzle);

// A 4-D map over a 16-bit [batch, heads, seq, dim] view with its own strides (validate_tensor's
// rules meet TMA's: 16-byte aligned base, strides multiples of 16 bytes), dims {dim, seq, heads,
// batch}, read in boxes of {box_dim, box_rows, 1, 1} swizzled by the box row's length (box_dim · 2:
// 128 or 64 bytes); rows past seq read as zeros.
CUtensorMap tensor_map_rows_16bit(const TensorRef& t, std::uint32_t box_dim, std::uint32_t box_rows);

// The three maps of the sm_90a attention kernel (templates/attn_wgmma.cuh, launch contract), for
// bh_q = B·Hq and bh_kv = B·Hkv (batch, heads) rows of the quantized workspace `qkv`: Q and K rows of
// qk_terms·D bytes read in boxes of attn_wgmma_qk_box_bytes(D) bytes (Q 64 rows, K cta_k rows) with
// the swizzle of that span; V the quantized channel-major FP8 V (rows of seq_kv_pad bytes, boxes of
// cta_k × D, swizzle of cta_k bytes) or, when `v16` is given, the caller's 16-bit V
// (tensor_map_rows_16bit, boxes of attn_wgmma_v16_box_channels(D) channels). Without a quantized Q
// (qkv.q null: the kernel quantizes Q itself, fused_q) the Q map is left zeroed, never read.
struct WgmmaTensorMaps {
  CUtensorMap q, k, v;
};
WgmmaTensorMaps wgmma_tensor_maps(const QuantizedQKV& qkv, std::uint64_t bh_q, std::uint64_t bh_kv, int head_dim,
                                  int qk_terms, int cta_k, const TensorRef* v16);

}  // namespace sagejit

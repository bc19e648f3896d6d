// tensor_map.cpp — cuTensorMapEncodeTiled for 2-D byte tensors and 4-D 16-bit tensor views, and the
// sm_90a attention kernel's maps built from them.
#include "runtime/tensor_map.hpp"

#include <stdexcept>

#include "runtime/driver.hpp"
#include "templates/attn_params.cuh"

namespace sagejit {

CUtensorMapSwizzle tensor_map_swizzle(int bytes) {
  return bytes == 128  ? CU_TENSOR_MAP_SWIZZLE_128B
         : bytes == 64 ? CU_TENSOR_MAP_SWIZZLE_64B
         : bytes == 32 ? CU_TENSOR_MAP_SWIZZLE_32B
                       : CU_TENSOR_MAP_SWIZZLE_NONE;
}

CUtensorMap tensor_map_u8(const void* base, std::uint64_t inner, std::uint64_t rows, std::uint64_t row_bytes,
                          std::uint32_t box_inner, std::uint32_t box_rows, CUtensorMapSwizzle swizzle) {
  CUtensorMap map{};
  std::uint64_t dims[2] = {inner, rows};
  std::uint64_t strides[1] = {row_bytes};
  std::uint32_t box[2] = {box_inner, box_rows};
  std::uint32_t element_strides[2] = {1, 1};
  SAGEJIT_CU(cuTensorMapEncodeTiled, &map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2u, const_cast<void*>(base), dims, strides,
             box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return map;
}

CUtensorMap tensor_map_rows_16bit(const TensorRef& t, std::uint32_t box_dim, std::uint32_t box_rows) {
  if (box_dim != 32 && box_dim != 64) {  // rows of 64 or 128 bytes: the two swizzles the kernel reads
    throw std::logic_error("tensor_map_rows_16bit: box_dim must be 32 or 64");
  }
  CUtensorMap map{};
  std::uint64_t dims[4] = {static_cast<std::uint64_t>(t.dim), static_cast<std::uint64_t>(t.seq),
                           static_cast<std::uint64_t>(t.heads), static_cast<std::uint64_t>(t.batch)};
  // A dimension of extent 1 is never stepped along: it gets the span of the dimensions inside it
  // (rounded to 16 bytes) whatever the view says, as a broadcast view may carry 0.
  std::uint64_t strides[3];
  std::uint64_t span = dims[0] * 2;
  const std::int64_t view[3] = {t.stride_s, t.stride_h, t.stride_b};
  for (int i = 0; i < 3; ++i) {
    strides[i] = dims[i + 1] == 1 ? (span + 15) / 16 * 16 : static_cast<std::uint64_t>(view[i]) * 2;
    span = strides[i] * dims[i + 1];
  }
  std::uint32_t box[4] = {box_dim, box_rows, 1, 1};
  std::uint32_t element_strides[4] = {1, 1, 1, 1};
  SAGEJIT_CU(cuTensorMapEncodeTiled, &map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 4u, const_cast<void*>(t.data), dims,
             strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
             tensor_map_swizzle(static_cast<int>(box_dim) * 2), CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return map;
}

WgmmaTensorMaps wgmma_tensor_maps(const QuantizedQKV& qkv, std::uint64_t bh_q, std::uint64_t bh_kv, int head_dim,
                                  int qk_terms, int cta_k, const TensorRef* v16) {
  const int D = head_dim, box = kernels::attn_wgmma_qk_box_bytes(D);
  const CUtensorMapSwizzle qk_swizzle = tensor_map_swizzle(box);
  const std::uint64_t row = std::uint64_t(qk_terms) * D;  // two terms: value, residual
  const auto u = [](int x) { return static_cast<std::uint32_t>(x); };
  WgmmaTensorMaps m;
  m.q = {};
  if (qkv.q != nullptr) {
    m.q = tensor_map_u8(qkv.q, row, bh_q * qkv.seq_q_pad, row, u(box), u(kernels::kWgmmaRowsPerWg), qk_swizzle);
  }
  m.k = tensor_map_u8(qkv.k, row, bh_kv * qkv.seq_kv_pad, row, u(box), u(cta_k), qk_swizzle);
  m.v = v16 != nullptr ? tensor_map_rows_16bit(*v16, u(kernels::attn_wgmma_v16_box_channels(D)), u(cta_k))
                       : tensor_map_u8(qkv.v, qkv.seq_kv_pad, bh_kv * D, qkv.seq_kv_pad, u(cta_k), u(D),
                                       tensor_map_swizzle(cta_k));
  return m;
}

}  // namespace sagejit

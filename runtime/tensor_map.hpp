// tensor_map.hpp — TMA descriptors (CUtensorMap) for the sm_90a kernels, encoded on the host.
//
// Encoding is a driver call that neither allocates device memory nor synchronizes, so it can run
// on every call (and during graph capture). Errors are CudaErrors naming cuTensorMapEncodeTiled.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "sagejit/tensor.hpp"

namespace sagejit {

// A 2-D uint8 map: `rows` rows of `row_bytes` bytes of which `inner` are used, read in boxes of
// box_inner x box_rows with the given swizzle; reads outside the tensor return zeros.
CUtensorMap tensor_map_u8(const void* base, std::uint64_t inner, std::uint64_t rows, std::uint64_t row_bytes,
                          std::uint32_t box_inner, std::uint32_t box_rows, CUtensorMapSwizzle swizzle);

// A 4-D map over a 16-bit [batch, heads, seq, dim] view with its own strides (validate_tensor's
// rules meet TMA's: 16-byte aligned base, strides multiples of 16 bytes), dims {dim, seq, heads,
// batch}, read in boxes of {box_dim, box_rows, 1, 1} swizzled by the box row's length (box_dim · 2:
// 128 or 64 bytes); rows past seq read as zeros.
CUtensorMap tensor_map_rows_16bit(const TensorRef& t, std::uint32_t box_dim, std::uint32_t box_rows);

}  // namespace sagejit

// tensor_map.hpp — TMA descriptors (CUtensorMap) for the sm_90a kernels, encoded on the host.
//
// Encoding is a driver call that neither allocates device memory nor synchronizes, so it can run
// on every call (and during graph capture). Errors are CudaErrors naming cuTensorMapEncodeTiled.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace sagejit {

// A 2-D uint8 map: `rows` rows of `row_bytes` bytes of which `inner` are used, read in boxes of
// box_inner x box_rows with the given swizzle; reads outside the tensor return zeros.
CUtensorMap tensor_map_u8(const void* base, std::uint64_t inner, std::uint64_t rows, std::uint64_t row_bytes,
                          std::uint32_t box_inner, std::uint32_t box_rows, CUtensorMapSwizzle swizzle);

}  // namespace sagejit

// workspace.hpp — device scratch memory kept per (context, stream), grown only when needed.
//
// A warm call finds its buffer and allocates nothing. Growth frees the old buffer only after the
// stream has drained (it may still be read by queued kernels), so it synchronizes that stream —
// and is refused while the stream is being captured into a graph (warm up before capturing).
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>

namespace sagejit {

struct StreamWorkspace {
  CUdeviceptr ptr = 0;
  std::size_t bytes = 0;
  std::uint64_t last_call = 0;  // identity of the last call that filled it (reuse_quantized)
};

// The workspace of `stream` in the current context, at least `bytes` long. The reference stays
// valid for the life of the process.
StreamWorkspace& stream_workspace(CUstream stream, std::size_t bytes);

}  // namespace sagejit

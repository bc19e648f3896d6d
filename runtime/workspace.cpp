// workspace.cpp — the per-stream workspace map.
#include "runtime/workspace.hpp"

#include <map>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "runtime/device.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"

namespace sagejit {

StreamWorkspace& stream_workspace(CUstream stream, std::size_t bytes) {
  static std::mutex mutex;
  static std::map<std::pair<CUcontext, CUstream>, std::unique_ptr<StreamWorkspace>> pool;
  const CUcontext ctx = ensure_current_context();
  std::lock_guard lock(mutex);
  auto& slot = pool[{ctx, stream}];
  if (!slot) slot = std::make_unique<StreamWorkspace>();
  if (slot->bytes >= bytes) return *slot;

  CUstreamCaptureStatus capture = CU_STREAM_CAPTURE_STATUS_NONE;
  SAGEJIT_CU(cuStreamGetCaptureInfo, stream, &capture, nullptr, nullptr, nullptr, nullptr, nullptr);
  if (capture != CU_STREAM_CAPTURE_STATUS_NONE) {
    throw InvalidArgument("stream", fmt::format("is being captured, and this call needs {} bytes of workspace that "
                                                "the stream does not have yet: run the call once before capturing",
                                                bytes));
  }
  if (slot->ptr) {
    SAGEJIT_CU(cuStreamSynchronize, stream);
    SAGEJIT_CU(cuMemFree, slot->ptr);
    slot->ptr = 0;
    slot->bytes = 0;
  }
  // Round up so that a sequence of slightly larger problems does not reallocate each time.
  const std::size_t rounded = std::max<std::size_t>(bytes + bytes / 8, 1 << 20);
  SAGEJIT_CU(cuMemAlloc, &slot->ptr, rounded);
  slot->bytes = rounded;
  slot->last_call = 0;
  return *slot;
}

}  // namespace sagejit

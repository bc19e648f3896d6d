// stream_fork.cpp — the per-(context, stream) helper streams.
#include "runtime/stream_fork.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "runtime/device.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"

namespace sagejit {

StreamFork& StreamFork::of(CUstream stream) {
  static std::mutex mutex;
  static std::map<std::pair<CUcontext, CUstream>, std::unique_ptr<StreamFork>> forks;
  const CUcontext ctx = ensure_current_context();
  std::lock_guard lock(mutex);
  auto& slot = forks[{ctx, stream}];
  if (!slot) {
    CUstream helper = nullptr;
    CUevent event = nullptr;
    SAGEJIT_CU(cuStreamCreate, &helper, CU_STREAM_NON_BLOCKING);
    if (const CUresult r = driver().cuEventCreate(&event, CU_EVENT_DISABLE_TIMING); r != CUDA_SUCCESS) {
      driver().cuStreamDestroy(helper);
      cu_check(r, "cuEventCreate");
    }
    slot = std::make_unique<StreamFork>(helper, event);
  }
  return *slot;
}

void StreamFork::fork(CUstream stream) {
  SAGEJIT_CU(cuEventRecord, event_, stream);
  SAGEJIT_CU(cuStreamWaitEvent, helper_, event_, 0);
}

void StreamFork::join(CUstream stream) {
  SAGEJIT_CU(cuEventRecord, event_, helper_);
  SAGEJIT_CU(cuStreamWaitEvent, stream, event_, 0);
}

}  // namespace sagejit

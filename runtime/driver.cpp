// driver.cpp — loading libcuda and checking results.
#include "runtime/driver.hpp"

#include <atomic>
#include <mutex>
#include <string>

#include "runtime/dynlib.hpp"
#include "runtime/error.hpp"

#define SAGEJIT_STR2(x) #x
#define SAGEJIT_STR(x) SAGEJIT_STR2(x)

namespace sagejit {
namespace {

struct LoadedDriver {
  DynLib lib;
  DriverApi api;
};

LoadedDriver load_driver() {
  DynLib lib = DynLib::open_first(
      "the CUDA driver (libcuda.so.1; is an NVIDIA driver installed and a GPU visible?)",
      {"libcuda.so.1", "libcuda.so"});
  DriverApi api;
#define SAGEJIT_RESOLVE_FN(name) \
  api.name = reinterpret_cast<decltype(api.name)>(lib.require(SAGEJIT_STR(name)));
  SAGEJIT_DRIVER_FUNCTIONS(SAGEJIT_RESOLVE_FN)
#undef SAGEJIT_RESOLVE_FN
  CUresult r = api.cuInit(0);
  if (r != CUDA_SUCCESS) {
    const char* name = nullptr;
    api.cuGetErrorName(r, &name);
    throw NotAvailable(std::string("the CUDA driver is installed but cuInit failed: ") +
                       (name ? name : "unknown") + " (no usable GPU?)");
  }
  api.cuDriverGetVersion(&api.version);
  return LoadedDriver{std::move(lib), api};
}

}  // namespace

const DriverApi& driver() {
  // Loaded once and never unloaded (kernels may outlive any static destructor). A failed load is
  // not cached: the next call tries again and reports its own reason. The fast path is one load.
  static std::atomic<LoadedDriver*> loaded{nullptr};
  if (LoadedDriver* p = loaded.load(std::memory_order_acquire)) return p->api;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (!loaded.load(std::memory_order_relaxed)) loaded.store(new LoadedDriver(load_driver()), std::memory_order_release);
  return loaded.load(std::memory_order_relaxed)->api;
}

bool gpu_available() {
  try {
    int count = 0;
    return driver().cuDeviceGetCount(&count) == CUDA_SUCCESS && count > 0;
  } catch (const Error&) {
    return false;
  }
}

void cu_check(CUresult result, const char* call) {
  if (result == CUDA_SUCCESS) return;
  const char* name = nullptr;
  const char* description = nullptr;
  const DriverApi& api = driver();
  api.cuGetErrorName(result, &name);
  api.cuGetErrorString(result, &description);
  throw CudaError(call, static_cast<int>(result), name ? name : "unknown",
                  description ? description : "");
}

}  // namespace sagejit

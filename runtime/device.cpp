// device.cpp — device attributes through the driver API.
#include "runtime/device.hpp"

#include <map>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "runtime/driver.hpp"
#include "runtime/error.hpp"

namespace sagejit {

int device_count() {
  int n = 0;
  SAGEJIT_CU(cuDeviceGetCount, &n);
  return n;
}

DeviceInfo query_device(int ordinal) {
  const int n = device_count();
  if (ordinal < 0 || ordinal >= n) {
    throw InvalidArgument("device", fmt::format("must be in [0, {}) (got {})", n, ordinal));
  }
  CUdevice dev = 0;
  SAGEJIT_CU(cuDeviceGet, &dev, ordinal);
  DeviceInfo info;
  info.ordinal = ordinal;
  char name[256] = {};
  SAGEJIT_CU(cuDeviceGetName, name, static_cast<int>(sizeof(name)), dev);
  info.name = name;
  auto attr = [&](CUdevice_attribute a) {
    int v = 0;
    SAGEJIT_CU(cuDeviceGetAttribute, &v, a, dev);
    return v;
  };
  info.cc_major = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
  info.cc_minor = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  info.sm_count = attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  info.shared_per_block_optin = attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
  info.shared_per_sm = attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR);
  info.l2_bytes = attr(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
  std::size_t total = 0;
  SAGEJIT_CU(cuDeviceTotalMem, &total, dev);
  info.total_memory = static_cast<std::int64_t>(total);
  info.driver_version = driver().version;
  return info;
}

int current_device_ordinal() {
  CUcontext ctx = nullptr;
  SAGEJIT_CU(cuCtxGetCurrent, &ctx);
  if (!ctx) return 0;
  CUdevice dev = 0;
  SAGEJIT_CU(cuCtxGetDevice, &dev);
  return static_cast<int>(dev);
}

const DeviceInfo& current_device_info() {
  static std::mutex mutex;
  static std::map<CUcontext, std::unique_ptr<DeviceInfo>> infos;
  const CUcontext ctx = ensure_current_context();
  std::lock_guard lock(mutex);
  auto& slot = infos[ctx];
  if (!slot) slot = std::make_unique<DeviceInfo>(query_device(current_device_ordinal()));
  return *slot;
}

CUcontext ensure_current_context() {
  CUcontext ctx = nullptr;
  SAGEJIT_CU(cuCtxGetCurrent, &ctx);
  if (ctx) return ctx;
  CUdevice device = 0;
  SAGEJIT_CU(cuDeviceGet, &device, 0);
  SAGEJIT_CU(cuDevicePrimaryCtxRetain, &ctx, device);
  SAGEJIT_CU(cuCtxSetCurrent, ctx);
  return ctx;
}

}  // namespace sagejit

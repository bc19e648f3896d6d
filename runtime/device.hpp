// device.hpp — what sagejit needs to know about a GPU.
//
// Queried through the driver API; on a machine without a driver these throw NotAvailable.
#pragma once

#include <cstdint>
#include <string>

#include <cuda.h>

#include "generator/types.hpp"

namespace sagejit {

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int cc_major = 0;
  int cc_minor = 0;
  int sm_count = 0;
  int shared_per_block_optin = 0;  // bytes a block may use after opting in
  int shared_per_sm = 0;
  int l2_bytes = 0;
  std::int64_t total_memory = 0;
  int driver_version = 0;          // e.g. 13000

  Arch arch() const { return arch_for_device(cc_major, cc_minor); }
};

int device_count();
DeviceInfo query_device(int ordinal);
// The device of the calling thread's current context (device 0 when there is none).
int current_device_ordinal();

// The current context's device, queried once per context and cached (cheap on the hot path).
const DeviceInfo& current_device_info();

// The calling thread's current context; when it has none, device 0's primary context is retained
// and made current, as the CUDA runtime would do.
CUcontext ensure_current_context();

}  // namespace sagejit

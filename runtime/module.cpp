// module.cpp — module loading and launches through the driver API.
#include "runtime/module.hpp"

#include "runtime/driver.hpp"

namespace sagejit {

void Kernel::declare_shared(unsigned shared_bytes) const {
  // The default dynamic limit is 48 KiB minus the kernel's static shared memory, so any dynamic
  // size above what was last set is declared (once per kernel and size, not per launch).
  if (shared_bytes > shared_limit_set_) {
    SAGEJIT_CU(cuFuncSetAttribute, function_, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
               static_cast<int>(shared_bytes));
    shared_limit_set_ = shared_bytes;
  }
}

int Kernel::resident_ctas(unsigned threads, unsigned shared_bytes) const {
  declare_shared(shared_bytes);
  int ctas = 0;
  SAGEJIT_CU(cuOccupancyMaxActiveBlocksPerMultiprocessor, &ctas, function_, static_cast<int>(threads), shared_bytes);
  return ctas;
}

namespace {

// cuLaunchKernelEx's description of `c`: the launch attributes it asks for (programmatic
// serialization, cluster dimensions) in `attributes`, which must outlive the result.
CUlaunchConfig extended_config(const LaunchConfig& c, CUstream stream, CUlaunchAttribute (&attributes)[2]) {
  unsigned n = 0;
  if (c.programmatic) {
    attributes[n] = {};
    attributes[n].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attributes[n++].value.programmaticStreamSerializationAllowed = 1;
  }
  if (c.cluster_x > 1) {
    attributes[n] = {};
    attributes[n].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attributes[n].value.clusterDim.x = c.cluster_x;
    attributes[n].value.clusterDim.y = 1;
    attributes[n++].value.clusterDim.z = 1;
  }
  CUlaunchConfig config{};
  config.gridDimX = c.grid.x, config.gridDimY = c.grid.y, config.gridDimZ = c.grid.z;
  config.blockDimX = c.block.x, config.blockDimY = c.block.y, config.blockDimZ = c.block.z;
  config.sharedMemBytes = c.shared_bytes;
  config.hStream = stream;
  config.attrs = attributes;
  config.numAttrs = n;
  return config;
}

}  // namespace

void Kernel::launch(const LaunchConfig& c, CUstream stream, void** args) const {
  declare_shared(c.shared_bytes);
  if (!c.programmatic && c.cluster_x == 1) {
    SAGEJIT_CU(cuLaunchKernel, function_, c.grid.x, c.grid.y, c.grid.z, c.block.x, c.block.y, c.block.z,
               c.shared_bytes, stream, args, nullptr);
    return;
  }
  CUlaunchAttribute attributes[2];
  const CUlaunchConfig config = extended_config(c, stream, attributes);
  SAGEJIT_CU(cuLaunchKernelEx, &config, function_, args, nullptr);
}

int Kernel::active_clusters(const LaunchConfig& c) const {
  declare_shared(c.shared_bytes);
  CUlaunchAttribute attributes[2];
  const CUlaunchConfig config = extended_config(c, nullptr, attributes);
  int clusters = 0;
  if (driver().cuOccupancyMaxActiveClusters(&clusters, function_, &config) != CUDA_SUCCESS) return 0;
  return clusters;
}

bool Kernel::allow_non_portable_clusters() const {
  return driver().cuFuncSetAttribute(function_, CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1) == CUDA_SUCCESS;
}

int Kernel::attribute(CUfunction_attribute a) const {
  int value = 0;
  SAGEJIT_CU(cuFuncGetAttribute, &value, a, function_);
  return value;
}

Module Module::load(const std::vector<char>& cubin) {
  CUmodule m = nullptr;
  SAGEJIT_CU(cuModuleLoadData, &m, cubin.data());
  return Module(m);
}

Module::~Module() {
  // A module may be destroyed after the driver has gone (process exit); ignore the result.
  if (module_) driver().cuModuleUnload(module_);
}

Kernel Module::kernel(const std::string& lowered_name) const {
  CUfunction f = nullptr;
  SAGEJIT_CU(cuModuleGetFunction, &f, module_, lowered_name.c_str());
  return Kernel(f, lowered_name);
}

}  // namespace sagejit

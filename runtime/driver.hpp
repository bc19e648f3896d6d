// driver.hpp — the CUDA driver API, loaded from libcuda.so.1 at run time.
//
// `driver()` loads the library and resolves every entry point once (thread-safe); without a driver
// it throws NotAvailable saying so, which is how GPU calls fail on a machine without a GPU. Each
// call goes through SAGEJIT_CU, which turns a non-success CUresult into a CudaError carrying the
// call, the code, its name and its description.
#pragma once

#include <cuda.h>

namespace sagejit {

// X(name) for every driver entry point sagejit uses. Names are cuda.h's, so versioned entry
// points (cuMemAlloc -> cuMemAlloc_v2) resolve to the symbols the header selects.
#define SAGEJIT_DRIVER_FUNCTIONS(X)                                                         \
  X(cuInit) X(cuDriverGetVersion) X(cuGetErrorName) X(cuGetErrorString) X(cuDeviceGetCount) \
  X(cuDeviceGet) X(cuDeviceGetName) X(cuDeviceGetAttribute) X(cuDeviceTotalMem)             \
  X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease) X(cuCtxGetCurrent)               \
  X(cuCtxSetCurrent) X(cuCtxGetDevice) X(cuCtxSynchronize) X(cuModuleLoadData)              \
  X(cuModuleUnload) X(cuModuleGetFunction) X(cuFuncSetAttribute) X(cuFuncGetAttribute)      \
  X(cuLaunchKernel) X(cuLaunchKernelEx) X(cuMemAlloc) X(cuMemFree) X(cuMemcpyHtoD) X(cuMemcpyDtoH)              \
  X(cuMemcpyDtoD) X(cuMemcpyDtoDAsync) X(cuMemsetD8) X(cuMemsetD8Async) X(cuStreamCreate) X(cuStreamDestroy)     \
  X(cuStreamSynchronize) X(cuStreamWaitEvent) X(cuEventCreate) X(cuEventDestroy) X(cuEventRecord) \
  X(cuEventSynchronize) X(cuEventElapsedTime) X(cuPointerGetAttribute)                      \
  X(cuStreamGetCaptureInfo) X(cuStreamBeginCapture) X(cuStreamEndCapture) X(cuGraphDestroy)       \
  X(cuGraphInstantiate) X(cuGraphLaunch) X(cuGraphExecDestroy) X(cuTensorMapEncodeTiled)        \
  X(cuOccupancyMaxActiveBlocksPerMultiprocessor) X(cuOccupancyMaxActiveClusters)

struct DriverApi {
#define SAGEJIT_DECLARE_FN(name) decltype(&::name) name = nullptr;
  SAGEJIT_DRIVER_FUNCTIONS(SAGEJIT_DECLARE_FN)
#undef SAGEJIT_DECLARE_FN
  int version = 0;  // cuDriverGetVersion, e.g. 13000
};

// Loads libcuda and calls cuInit once. Throws NotAvailable without a driver or GPU.
const DriverApi& driver();

// True when a driver is present and at least one GPU is visible. Never throws.
bool gpu_available();

// Throws CudaError when `result` is not CUDA_SUCCESS.
void cu_check(CUresult result, const char* call);

}  // namespace sagejit

// SAGEJIT_CU(cuMemAlloc, &ptr, bytes): call through the loaded driver and check the result.
#define SAGEJIT_CU(fn, ...) ::sagejit::cu_check(::sagejit::driver().fn(__VA_ARGS__), #fn)

// module.hpp — a loaded cubin and launching its kernel.
//
// Module owns a CUmodule (unloaded on destruction). Kernels are looked up by the lowered name that
// NVRTC reported for the spec's name expression. `launch` raises the dynamic shared memory limit
// once per kernel and size (the default dynamic limit is 48 KiB minus the static shared memory).
#pragma once

#include <cuda.h>

#include <string>
#include <vector>

namespace sagejit {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

struct LaunchConfig {
  Dim3 grid;
  Dim3 block;
  unsigned shared_bytes = 0;  // dynamic shared memory
  // Programmatic dependent launch (sm_90+): the kernel may start before the kernel ahead of it in
  // the stream has finished, once every CTA of that one has run griddepcontrol.launch_dependents
  // (common.cuh, griddep_launch_dependents). It must run griddepcontrol.wait (griddep_wait) before
  // it reads anything the earlier kernel writes; what it does before overlaps that kernel's tail.
  bool programmatic = false;
  // Thread-block clusters (sm_90+) of this many CTAs along x (1: none); grid.x a multiple of it.
  unsigned cluster_x = 1;
};

class Kernel {
 public:
  Kernel() = default;
  Kernel(CUfunction f, std::string name) : function_(f), name_(std::move(name)) {}
  // `args` points to each kernel parameter, as cuLaunchKernel takes them.
  void launch(const LaunchConfig& config, CUstream stream, void** args) const;
  CUfunction function() const { return function_; }
  const std::string& name() const { return name_; }
  int attribute(CUfunction_attribute a) const;
  // CTAs of `threads` threads and `shared_bytes` of dynamic shared memory that one SM holds at once
  // (declares the dynamic size first, as a launch does).
  int resident_ctas(unsigned threads, unsigned shared_bytes) const;
  // Clusters of `config`'s shape (block, shared memory, cluster_x) that the GPU holds at once; 0 when
  // it cannot hold one, or the driver refuses the shape.
  int active_clusters(const LaunchConfig& config) const;
  // Lets its launches (and active_clusters) use clusters of more than 8 CTAs, the portable limit;
  // false where the driver refuses (then only portable sizes are asked for).
  bool allow_non_portable_clusters() const;

 private:
  CUfunction function_ = nullptr;
  std::string name_;
  void declare_shared(unsigned shared_bytes) const;
  mutable unsigned shared_limit_set_ = 0;
};

class Module {
 public:
  static Module load(const std::vector<char>& cubin);
  Module(Module&& other) noexcept : module_(other.module_) { other.module_ = nullptr; }
  Module& operator=(Module&&) = delete;
  Module(const Module&) = delete;
  ~Module();
  Kernel kernel(const std::string& lowered_name) const;

 private:
  explicit Module(CUmodule m) : module_(m) {}
  CUmodule module_ = nullptr;
};

}  // namespace sagejit

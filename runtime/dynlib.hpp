// dynlib.hpp — RAII over dlopen/dlsym.
//
// libcuda and libnvrtc are loaded at run time so that sagejit and its CPU tests work on machines
// without a GPU or driver. A library that cannot be found is a NotAvailable naming every path tried.
#pragma once

#include <string>
#include <vector>

namespace sagejit {

class DynLib {
 public:
  // Tries each candidate in order; throws NotAvailable listing them all (and dlerror's reasons)
  // when none loads. `what` names the library for the message ("the CUDA driver (libcuda)").
  static DynLib open_first(const std::string& what, const std::vector<std::string>& candidates);

  DynLib(DynLib&& other) noexcept;
  DynLib& operator=(DynLib&& other) noexcept;
  DynLib(const DynLib&) = delete;
  DynLib& operator=(const DynLib&) = delete;
  ~DynLib();

  // nullptr when the symbol is absent.
  void* find(const char* symbol) const;
  // Throws NotAvailable naming the symbol and the library.
  void* require(const char* symbol) const;
  const std::string& path() const { return path_; }

 private:
  DynLib(void* handle, std::string path) : handle_(handle), path_(std::move(path)) {}
  void* handle_ = nullptr;
  std::string path_;
};

}  // namespace sagejit

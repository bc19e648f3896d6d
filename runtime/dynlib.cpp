// dynlib.cpp — dlopen with a message that says what was tried.
#include "runtime/dynlib.hpp"

#include <dlfcn.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/error.hpp"

namespace sagejit {

DynLib DynLib::open_first(const std::string& what, const std::vector<std::string>& candidates) {
  std::vector<std::string> failures;
  for (const auto& path : candidates) {
    if (void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) return DynLib(handle, path);
    const char* reason = dlerror();
    failures.push_back(fmt::format("{} ({})", path, reason ? reason : "unknown error"));
  }
  throw NotAvailable(fmt::format("{} could not be loaded; tried: {}", what, fmt::join(failures, "; ")));
}

DynLib::DynLib(DynLib&& other) noexcept : handle_(other.handle_), path_(std::move(other.path_)) {
  other.handle_ = nullptr;
}

DynLib& DynLib::operator=(DynLib&& other) noexcept {
  if (this != &other) {
    if (handle_) dlclose(handle_);
    handle_ = other.handle_;
    path_ = std::move(other.path_);
    other.handle_ = nullptr;
  }
  return *this;
}

DynLib::~DynLib() {
  if (handle_) dlclose(handle_);
}

void* DynLib::find(const char* symbol) const { return dlsym(handle_, symbol); }

void* DynLib::require(const char* symbol) const {
  void* p = find(symbol);
  if (!p) throw NotAvailable(fmt::format("{} has no symbol {}", path_, symbol));
  return p;
}

}  // namespace sagejit

// error.cpp — messages of the typed errors.
#include "runtime/error.hpp"

#include <fmt/format.h>

namespace sagejit {

const char* status_name(Status s) {
  switch (s) {
    case Status::ok: return "ok";
    case Status::invalid_argument: return "invalid_argument";
    case Status::not_available: return "not_available";
    case Status::cuda_error: return "cuda_error";
    case Status::compile_error: return "compile_error";
    case Status::cache_error: return "cache_error";
    case Status::internal: return "internal";
  }
  return "unknown";
}

InvalidArgument::InvalidArgument(std::string argument, std::string rule)
    : Error(Status::invalid_argument, fmt::format("argument `{}`: {}", argument, rule)),
      argument_(std::move(argument)),
      rule_(std::move(rule)) {}

CudaError::CudaError(std::string call, int code, std::string name, std::string description)
    : Error(Status::cuda_error, fmt::format("{} failed: {} ({}): {}", call, name, code, description)),
      call_(std::move(call)),
      code_(code) {}

CompileError::CompileError(std::string kernel, std::string options, std::string log,
                           std::string reason)
    : Error(Status::compile_error,
            fmt::format("compiling {} failed: {}\noptions: {}\nlog:\n{}", kernel, reason, options, log)),
      kernel_(std::move(kernel)),
      options_(std::move(options)),
      log_(std::move(log)) {}

}  // namespace sagejit

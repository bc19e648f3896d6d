// error.hpp — the typed errors sagejit throws inside C++.
//
// Every failure is one of these, and each carries what is needed to act on it: the argument and
// the rule it broke, the driver call and its code, the NVRTC log and options. At the C ABI
// (include/sagejit/sagejit.h) they become a status code plus a thread-local message.
#pragma once

#include <stdexcept>
#include <string>

namespace sagejit {

enum class Status : int {
  ok = 0,
  invalid_argument = 1,  // the caller's input broke a rule; nothing was launched or written
  not_available = 2,     // a library, driver or GPU that the call needs is absent
  cuda_error = 3,        // a driver call failed
  compile_error = 4,     // NVRTC rejected a generated unit
  cache_error = 5,       // the on-disk cache failed (callers degrade; this rarely escapes)
  internal = 6,          // a bug in sagejit
};

const char* status_name(Status s);

class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  Status status() const { return status_; }

 private:
  Status status_;
};

// "argument `head_dim`: must be one of 64, 96, 128, 256 (got 80)"
class InvalidArgument : public Error {
 public:
  InvalidArgument(std::string argument, std::string rule);
  const std::string& argument() const { return argument_; }
  const std::string& rule() const { return rule_; }

 private:
  std::string argument_;
  std::string rule_;
};

// A shared library, driver or device is missing; `what` names it and how to provide it.
class NotAvailable : public Error {
 public:
  explicit NotAvailable(const std::string& message) : Error(Status::not_available, message) {}
};

class CudaError : public Error {
 public:
  CudaError(std::string call, int code, std::string name, std::string description);
  const std::string& call() const { return call_; }
  int code() const { return code_; }

 private:
  std::string call_;
  int code_;
};

class CompileError : public Error {
 public:
  CompileError(std::string kernel, std::string options, std::string log, std::string reason);
  const std::string& kernel() const { return kernel_; }
  const std::string& options() const { return options_; }
  const std::string& log() const { return log_; }

 private:
  std::string kernel_;
  std::string options_;
  std::string log_;
};

class CacheError : public Error {
 public:
  explicit CacheError(const std::string& message) : Error(Status::cache_error, message) {}
};

}  // namespace sagejit

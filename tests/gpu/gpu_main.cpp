// gpu_main.cpp — the GPU suite's runner. Without a GPU every test case is skipped (doctest counts
// it as skipped, not passed) and the reason is printed once.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "runtime/driver.hpp"
#include "runtime/error.hpp"

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  if (!sagejit::gpu_available()) {
    std::string reason = "no GPU";
    try {
      sagejit::driver();
    } catch (const sagejit::Error& e) {
      reason = e.what();
    }
    std::printf("skipped: no GPU (%s)\n", reason.c_str());
  }
  return context.run();
}

// Tests of runtime/driver and runtime/device as seen from a machine that may have no GPU: the
// library loads and a GPU call fails with a NotAvailable that says what is missing.
#include <doctest/doctest.h>

#include "runtime/device.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"

using namespace sagejit;

TEST_CASE("without a GPU, driver calls fail with NotAvailable naming libcuda; with one, they work") {
  if (gpu_available()) {
    CHECK(device_count() > 0);
    DeviceInfo d = query_device(0);
    CHECK_FALSE(d.name.empty());
    CHECK(d.sm_count > 0);
    CHECK_THROWS_AS(query_device(device_count()), InvalidArgument);
  } else {
    try {
      query_device(0);
      FAIL("expected NotAvailable");
    } catch (const NotAvailable& e) {
      CHECK(std::string(e.what()).find("libcuda") != std::string::npos);
    }
  }
}

// info.cpp — `sagejit info`: GPU, driver, NVRTC, cache location, size and row count.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "generator/embedded.hpp"
#include "generator/unit.hpp"
#include "runtime/device.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"
#include "runtime/nvrtc.hpp"
#include "runtime/settings.hpp"

namespace sagejit::cli {

void add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show the GPU, driver, NVRTC and cache in use");
  static bool json = false;
  cmd->add_flag("--json", json, "Print JSON");
  cmd->callback([] {
    nlohmann::json j;
    j["version"] = SAGEJIT_VERSION;
    j["generator_version"] = kGeneratorVersion;
    j["template_hash"] = std::string(embedded_templates_hash());
    try {
      j["driver_version"] = driver().version;
      nlohmann::json gpus = nlohmann::json::array();
      for (int i = 0; i < device_count(); ++i) {
        DeviceInfo d = query_device(i);
        gpus.push_back({{"ordinal", i}, {"name", d.name}, {"compute_capability", fmt::format("{}.{}", d.cc_major, d.cc_minor)},
                        {"sm_count", d.sm_count}, {"shared_per_block_optin", d.shared_per_block_optin},
                        {"memory_bytes", d.total_memory}});
      }
      j["gpus"] = gpus;
    } catch (const NotAvailable& e) {
      j["gpus"] = nlohmann::json::array();
      j["gpu_error"] = e.what();
    }
    try {
      j["nvrtc"] = {{"version", nvrtc_version_string()}, {"library", nvrtc().library_path}};
    } catch (const NotAvailable& e) {
      j["nvrtc"] = {{"error", e.what()}};
    }
    StoreInfo s = default_jit().store().info();
    j["cache"] = {{"path", s.path.string()}, {"in_memory", s.in_memory}, {"bytes", s.file_bytes},
                  {"cubins", s.cubin_rows}, {"schema_version", s.schema_version}};
    if (json) {
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("sagejit {} (generator {}, templates {})\n", SAGEJIT_VERSION, kGeneratorVersion,
               embedded_templates_hash());
    if (j.contains("gpu_error")) {
      fmt::print("GPU:    none ({})\n", j["gpu_error"].get<std::string>());
    } else {
      fmt::print("driver: {}\n", j["driver_version"].get<int>());
      for (const auto& g : j["gpus"]) {
        fmt::print("GPU {}:  {} (sm {}, {} SMs, {} KiB shared/block)\n", g["ordinal"].get<int>(),
                   g["name"].get<std::string>(), g["compute_capability"].get<std::string>(), g["sm_count"].get<int>(),
                   g["shared_per_block_optin"].get<int>() / 1024);
      }
    }
    if (j["nvrtc"].contains("error")) {
      fmt::print("NVRTC:  none ({})\n", j["nvrtc"]["error"].get<std::string>());
    } else {
      fmt::print("NVRTC:  {} ({})\n", j["nvrtc"]["version"].get<std::string>(), j["nvrtc"]["library"].get<std::string>());
    }
    fmt::print("cache:  {}{} — {} cubins, {:.1f} MiB\n", s.in_memory ? "in memory " : "", s.path.string(), s.cubin_rows,
               s.file_bytes / 1048576.0);
  });
}

}  // namespace sagejit::cli

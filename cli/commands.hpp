// commands.hpp — the `sagejit` subcommands, each registered on the CLI11 app by its own file.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "generator/types.hpp"

namespace sagejit::cli {

void add_info(CLI::App& app);
void add_compile(CLI::App& app);
void add_cache(CLI::App& app);
void add_selftest(CLI::App& app);
void add_tune(CLI::App& app);
void add_bench(CLI::App& app);
void add_export(CLI::App& app);
void add_import(CLI::App& app);

// The targets named by repeated `--arch` flags ("all": every supported arch); with none, the
// current GPU's arch, or InvalidArgument("--arch") when there is no GPU. Shared by compile and export.
std::vector<Arch> target_archs(const std::vector<std::string>& flags);

}  // namespace sagejit::cli

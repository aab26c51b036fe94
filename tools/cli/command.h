// The CLI's sub-commands register themselves: each tools/cli/cmd_NAME.cpp defines a setup
// function that adds its options and callback to a CLI11 sub-command, and registers it with
//
//   static const selfsup::cli::Registrar kRegistrar("info", "Print version, build and devices",
//                                                   &setup_info);
//
// main.cpp builds the app from the registry, so adding a command means adding one file.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace selfsup::cli {

// Adds options to `sub` and sets its callback (sub->callback(...)). A callback reports failure
// by throwing selfsup::Error or CLI::Error; main prints one line and exits non-zero.
using SetupFn = void (*)(CLI::App& sub);

struct CommandSpec {
  std::string name;
  std::string summary;
  SetupFn setup;
};

std::vector<CommandSpec>& command_registry();

struct Registrar {
  Registrar(const char* name, const char* summary, SetupFn setup) {
    command_registry().push_back({name, summary, setup});
  }
};

}  // namespace selfsup::cli

// TOML configuration files for sub-commands: every key is an option's long name
// (batch-size = 256), and an option given on the command line wins over the file.
// (CLI11 2.1 only reads config files for the top-level app, so sub-commands use this.)
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace selfsup::cli {

// Sets every option of `sub` named in the TOML file `path` that the command line did not set.
// An unreadable file, a TOML syntax error or a key that names no option is a selfsup::Error
// naming the file and the key.
void apply_config_file(CLI::App& sub, const std::string& path);

}  // namespace selfsup::cli

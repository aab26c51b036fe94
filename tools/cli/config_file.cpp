#include "tools/cli/config_file.h"

#include <toml++/toml.h>
#include <cstdio>

#include "core/error.h"

namespace selfsup::cli {

namespace {

// A TOML value as the text CLI11 would have received on the command line.
std::string as_argument(const toml::node& value, const std::string& path, const std::string& key) {
  // Ask for the exact type: toml++'s value<T>() would also convert between kinds.
  if (value.is_string()) return *value.value<std::string>();
  if (value.is_boolean()) return *value.value<bool>() ? "true" : "false";
  if (value.is_integer()) return std::to_string(*value.value<int64_t>());
  if (value.is_floating_point()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", *value.value<double>());
    return buf;
  }
  throw Error("config " + path + ": key '" + key + "' must be a string, number or boolean");
}

}  // namespace

void apply_config_file(CLI::App& sub, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw Error("config " + path + ": " + std::string(e.description()) + " (line " +
                std::to_string(e.source().begin.line) + ")");
  }
  for (const auto& [key_view, value] : table) {
    std::string key(key_view.str());
    CLI::Option* option = sub.get_option_no_throw("--" + key);
    SELFSUP_CHECK(option, "config ", path, ": unknown option '", key, "'");
    if (option->count() > 0 || key == "config") continue;  // the command line wins
    std::string arg = as_argument(value, path, key);
    if (arg.empty()) continue;  // an unset option, as config_to_str writes it
    option->add_result(arg);
    option->run_callback();
  }
}

}  // namespace selfsup::cli

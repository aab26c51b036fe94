// The selfsup command line: one CLI11 app with a sub-command per registry entry (each
// tools/cli/cmd_NAME.cpp registers itself, see command.h). Every failure ends as one line on
// stderr and a non-zero exit, never a stack of messages or a crash.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <exception>
#include <iostream>

#include "core/error.h"
#include "tools/cli/command.h"

namespace {

// Sorted by name so that `--help` lists the commands in the same order whatever the link order.
void add_commands(CLI::App& app) {
  std::vector<selfsup::cli::CommandSpec> specs = selfsup::cli::command_registry();
  std::sort(specs.begin(), specs.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& spec : specs) {
    CLI::App* sub = app.add_subcommand(spec.name, spec.summary);
    spec.setup(*sub);
  }
}

// CLI11 answers an unknown command with "A subcommand is required"; name the word instead. The
// top-level options take no values, so the first word not starting with '-' is the command.
void check_command_name(int argc, char** argv) {
  const auto& registry = selfsup::cli::command_registry();
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;
    auto named = [&](const auto& spec) { return spec.name == argv[i]; };
    if (std::none_of(registry.begin(), registry.end(), named)) {
      throw selfsup::Error(std::string("unknown command '") + argv[i] +
                           "' (run `selfsup --help` for the list)");
    }
    return;
  }
}

int fail(const char* message) {
  std::cerr << "selfsup: error: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "selfsup: self-supervised learning from first principles in C++20/CUDA "
      "(tensor engine, hand-written kernels, autograd, nn, SSL methods).",
      "selfsup"};
  app.set_version_flag("--version", std::string("selfsup ") + SELFSUP_VERSION);
  app.require_subcommand(1);

  try {
    add_commands(app);
    // After the commands, which would otherwise inherit it.
    app.footer("Run `selfsup COMMAND --help` for the options of one command.");
    check_command_name(argc, argv);
    app.parse(argc, argv);  // runs the chosen command's callback
  } catch (const CLI::ParseError& e) {
    return app.exit(e);  // --help, --version, and bad command lines
  } catch (const selfsup::Error& e) {
    return fail(e.what());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 0;
}

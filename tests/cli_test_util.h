// Running the built `selfsup` binary from a test: where it is, one run with stdout and stderr
// captured, and reading a file whole. Shared by the tests that drive the CLI.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace selfsup::test {

struct CliResult {
  int status = -1;  // exit status, -1 when killed by a signal
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The `selfsup` binary built next to the running test executable.
inline std::filesystem::path selfsup_beside_test() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path() / "selfsup";
}

// Runs `env binary args` (env: e.g. "TMPDIR=/x ", may be empty) with stdout and stderr sent to
// files in `dir`, and returns the exit status and both texts.
inline CliResult run_cli(const std::filesystem::path& binary, const std::string& args,
                         const std::filesystem::path& dir, const std::string& env = "") {
  const std::filesystem::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd =
      env + binary.string() + " " + args + " >" + out.string() + " 2>" + err.string();
  CliResult r;
  const int raw = std::system(cmd.c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace selfsup::test

// Shared by the end-to-end SSL tests (tests/test_ssl_*.cpp): whether the dataset is installed,
// a fresh per-process run folder, and the per-epoch records a run wrote.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace selfsup::test {

inline bool have_fashion_mnist() {
  return std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

// An empty path under the temp folder, unique to this process and `name`.
inline std::string temp_dir(const std::string& name) {
  std::filesystem::path p = std::filesystem::temp_directory_path() /
                            ("selfsup_test_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(p);
  return p.string();
}

// The lines of run/metrics.jsonl, one JSON object per finished epoch.
inline std::vector<nlohmann::json> metrics(const std::string& run) {
  std::vector<nlohmann::json> out;
  std::ifstream f(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(f, line))
    out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace selfsup::test

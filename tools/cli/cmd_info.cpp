// `selfsup info`: what this build is and what this machine offers — version, build options,
// CPU threads, CUDA devices (or why there are none) and the datasets found. The facts are
// gathered once into an InfoReport, then printed as aligned text or, with --json, as one JSON
// object with the same content.
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/eigen.h"
#include "kernels/cuda/device_info.h"
#include "tools/cli/command.h"
#include "tools/cli/host_info.h"

namespace selfsup::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
const char* kFashionMnistPackage = "dataset-fashion-mnist";
const std::vector<std::string> kFashionMnistFiles = {
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz"};

// ---------------------------------------------------------------- the facts

struct BuildInfo {
  std::string type;  // CMake's build type, the vector extensions compiled for, NDEBUG
  bool cuda_backend = false;
  std::string compiler;  // "GCC 12.2.0"
  std::string cxx_standard;
  std::string openmp;  // OpenMP spec version the compiler implements
  std::string eigen;   // "3.4.0"
  std::string eigen_simd;
};

struct CpuInfo {
  std::string model;
  unsigned hardware_threads = 0;
  int omp_max_threads = 0;
};

struct DatasetInfo {
  std::string name;
  std::string path;
  std::vector<std::string> missing_files;
  std::string package;  // the Debian package that installs it
  bool found() const { return missing_files.empty(); }
};

struct InfoReport {
  std::string version = SELFSUP_VERSION;
  BuildInfo build;
  CpuInfo cpu;
  cuda::DeviceReport cuda;
  std::vector<DatasetInfo> datasets;
};

std::string build_type() {
  std::string type = SELFSUP_BUILD_TYPE;
  if (type.empty()) type = "(none)";
#if defined(__AVX2__)
  type += ", AVX2";
#endif
#if defined(__FMA__)
  type += ", FMA";
#endif
#if defined(NDEBUG)
  return type + ", assertions off";
#else
  return type + ", assertions on";
#endif
}

std::string compiler_name() {
#if defined(__clang__)
  return std::string("Clang ") + __clang_version__;
#elif defined(__GNUC__)
  return "GCC " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
         std::to_string(__GNUC_PATCHLEVEL__);
#else
  return "unknown compiler";
#endif
}

std::string cxx_standard() {
  if (__cplusplus >= 202302L) return "C++23";
  if (__cplusplus >= 202002L) return "C++20";
  return "C++ " + std::to_string(__cplusplus);
}

// _OPENMP is the yyyymm date of the spec the compiler implements.
std::string openmp_version() {
  switch (_OPENMP) {
    case 201511:
      return "4.5";
    case 201811:
      return "5.0";
    case 202011:
      return "5.1";
    case 202111:
      return "5.2";
    default:
      return std::to_string(_OPENMP);
  }
}

BuildInfo collect_build() {
  BuildInfo b;
  b.type = build_type();
#if defined(SELFSUP_WITH_CUDA)
  b.cuda_backend = true;
#endif
  b.compiler = compiler_name();
  b.cxx_standard = cxx_standard();
  b.openmp = openmp_version();
  b.eigen = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
            std::to_string(EIGEN_MINOR_VERSION);
  b.eigen_simd = Eigen::SimdInstructionSetsInUse();
  return b;
}

CpuInfo collect_cpu() {
  return {cpu_model(), std::thread::hardware_concurrency(), omp_get_max_threads()};
}

DatasetInfo find_fashion_mnist(const std::string& dir) {
  DatasetInfo d{"fashion-mnist", dir, {}, kFashionMnistPackage};
  for (const auto& file : kFashionMnistFiles) {
    std::error_code ec;  // an unreadable folder counts as missing, not as an error
    if (!fs::is_regular_file(fs::path(dir) / file, ec)) d.missing_files.push_back(file);
  }
  return d;
}

InfoReport collect(const std::string& data_dir) {
  InfoReport r;
  r.build = collect_build();
  r.cpu = collect_cpu();
  r.cuda = cuda::query_devices();
  r.datasets.push_back(find_fashion_mnist(data_dir));
  return r;
}

// ---------------------------------------------------------------- text

// 12040 -> "12.4"; 0 -> "none"
std::string cuda_version(int v) {
  if (v == 0) return "none";
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

double gib(size_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& s : items)
    out += (out.empty() ? "" : sep) + s;
  return out;
}

void row(std::ostream& os, const std::string& label, const std::string& value) {
  os << "  " << label << std::string(label.size() < 16 ? 16 - label.size() : 1, ' ') << value
     << "\n";
}

std::string gpu_line(const cuda::GpuInfo& g) {
  char mem[32];
  std::snprintf(mem, sizeof mem, "%.1f GiB", gib(g.total_memory));
  return g.name + ", compute " + std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor) +
         ", " + std::to_string(g.sm_count) + " SMs, " + mem;
}

void print_cuda(std::ostream& os, const cuda::DeviceReport& c) {
  os << "cuda\n";
  if (c.compiled) {
    row(os, "runtime", cuda_version(c.runtime_version));
    row(os, "driver", cuda_version(c.driver_version));
  }
  if (c.gpus.empty()) row(os, "devices", "none: " + c.reason);
  for (const auto& g : c.gpus)
    row(os, "device " + std::to_string(g.index), gpu_line(g));
}

void print_dataset(std::ostream& os, const DatasetInfo& d) {
  if (d.found()) {
    row(os, d.name, "found: " + d.path);
    return;
  }
  row(os, d.name, "missing: " + d.path + " (no " + join(d.missing_files, ", ") + ")");
  row(os, "", "install with: apt-get install " + d.package);
}

void print_text(std::ostream& os, const InfoReport& r) {
  const BuildInfo& b = r.build;
  os << "selfsup " << r.version << "\n";
  os << "build\n";
  row(os, "type", b.type);
  row(os, "CUDA backend", b.cuda_backend ? "compiled" : "not compiled");
  row(os, "compiler", b.compiler + ", " + b.cxx_standard);
  row(os, "OpenMP", b.openmp);
  row(os, "Eigen", b.eigen + " (" + b.eigen_simd + ")");
  os << "cpu\n";
  row(os, "model", r.cpu.model);
  row(os, "threads",
      std::to_string(r.cpu.hardware_threads) + " hardware, " +
          std::to_string(r.cpu.omp_max_threads) + " OpenMP (max)");
  print_cuda(os, r.cuda);
  os << "datasets\n";
  for (const auto& d : r.datasets)
    print_dataset(os, d);
}

// ---------------------------------------------------------------- JSON

json cuda_json(const cuda::DeviceReport& c) {
  json devices = json::array();
  for (const auto& g : c.gpus) {
    devices.push_back(
        {{"index", g.index},
         {"name", g.name},
         {"compute_capability", std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor)},
         {"sm_count", g.sm_count},
         {"memory_bytes", g.total_memory},
         {"memory_gib", gib(g.total_memory)}});
  }
  json j = {{"compiled", c.compiled},
            {"runtime_version", c.compiled ? cuda_version(c.runtime_version) : "none"},
            {"driver_version", cuda_version(c.driver_version)},
            {"devices", devices}};
  if (c.gpus.empty()) j["reason"] = c.reason;
  return j;
}

json dataset_json(const DatasetInfo& d) {
  json j = {{"path", d.path}, {"found", d.found()}, {"missing_files", d.missing_files}};
  if (!d.found()) j["install_hint"] = "apt-get install " + d.package;
  return j;
}

json to_json(const InfoReport& r) {
  const BuildInfo& b = r.build;
  json datasets = json::object();
  for (const auto& d : r.datasets)
    datasets[d.name] = dataset_json(d);
  return {{"version", r.version},
          {"build",
           {{"type", b.type},
            {"cuda_backend", b.cuda_backend},
            {"compiler", b.compiler},
            {"cxx_standard", b.cxx_standard},
            {"openmp", b.openmp},
            {"eigen", b.eigen},
            {"eigen_simd", b.eigen_simd}}},
          {"cpu",
           {{"model", r.cpu.model},
            {"hardware_threads", r.cpu.hardware_threads},
            {"omp_max_threads", r.cpu.omp_max_threads}}},
          {"cuda", cuda_json(r.cuda)},
          {"datasets", datasets}};
}

// ---------------------------------------------------------------- the command

struct InfoOptions {
  std::string data_dir = kFashionMnistDir;
  bool json = false;
};

void setup_info(CLI::App& sub) {
  auto opts = std::make_shared<InfoOptions>();  // outlives setup: the callback runs at parse time
  sub.add_option("--data-dir", opts->data_dir, "Folder holding the Fashion-MNIST .gz files")
      ->capture_default_str();
  sub.add_flag("--json", opts->json, "Print one JSON object instead of text");
  sub.callback([opts] {
    InfoReport report = collect(opts->data_dir);
    if (opts->json) {
      std::cout << to_json(report).dump(2) << "\n";
    } else {
      print_text(std::cout, report);
    }
  });
}

const Registrar kRegistrar("info", "Print version, build options, CPU threads, GPUs and datasets",
                           &setup_info);

}  // namespace
}  // namespace selfsup::cli

// `selfsup bench`: runs the Google Benchmark executables built beside `selfsup` (bench_cpu_gemm,
// bench_cuda_gemm, ...) and prints all their results as one table, with the date and the machine
// above it. Each executable writes its results as JSON to a file in a temporary folder; the
// parsing and the table are in bench_table.h. --filter picks whole executables by name, or single
// benchmarks by name (passed on as --benchmark_filter).
#include <fcntl.h>
#include <omp.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/device_info.h"
#include "tools/cli/bench_table.h"
#include "tools/cli/command.h"
#include "tools/cli/host_info.h"

extern char** environ;

namespace selfsup::cli {
namespace {

namespace fs = std::filesystem;
using bench::BenchRow;

struct BenchOptions {
  std::string filter;
  double min_time = 0.5;  // Google Benchmark's own default
  std::string bench_dir;  // default: the folder of the running selfsup
  std::string json_out;
  std::string markdown_out;
};

// ---------------------------------------------------------------- files and processes

// A private folder for the executables' output, removed at the end unless keep() was called
// (after a failure, so that the files its message names can be read).
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "selfsup-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw Error("bench: cannot create a folder like " + pattern + ": " + std::strerror(errno));
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!keep_) fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  fs::path path_;
  bool keep_ = false;
};

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
  if (!out) throw Error("bench: cannot write " + file);
}

// Runs args[0] with its stdout and stderr sent to files; returns the wait status.
int run_process(const std::vector<std::string>& args, const fs::path& out, const fs::path& err) {
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw Error("bench: cannot run " + args[0] + ": " + std::strerror(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// The last non-empty line of a file, for an error message.
std::string last_line(const fs::path& file) {
  std::istringstream in(slurp(file));
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  }
  return last.empty() ? "(nothing on stderr)" : last;
}

// Throws unless the process exited with status 0.
void check_status(int status, const fs::path& exe, const fs::path& err) {
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  std::string how = WIFEXITED(status)     ? "exit " + std::to_string(WEXITSTATUS(status))
                    : WIFSIGNALED(status) ? std::string("signal ") + strsignal(WTERMSIG(status))
                                          : "status " + std::to_string(status);
  throw Error("bench: " + exe.string() + " failed (" + how + "): " + last_line(err));
}

// ---------------------------------------------------------------- one executable

// What to run of one executable: all of it (no filter, or the filter matches its name), the
// benchmarks the filter matches, or nothing.
enum class Scope { kAll, kFiltered, kNone };

Scope choose_scope(const fs::path& exe, const BenchOptions& o, const std::optional<std::regex>& re,
                   const fs::path& tmp) {
  if (!re || std::regex_search(exe.filename().string(), *re)) return Scope::kAll;
  const fs::path out = tmp / (exe.filename().string() + ".list");
  const fs::path err = tmp / (exe.filename().string() + ".list.err");
  check_status(
      run_process({exe.string(), "--benchmark_list_tests=true", "--benchmark_filter=" + o.filter},
                  out, err),
      exe, err);
  const bool any = slurp(out).find_first_not_of(" \t\r\n") != std::string::npos;
  return any ? Scope::kFiltered : Scope::kNone;
}

// 0.5 -> "0.5", 0.01 -> "0.01"
std::string number_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::vector<BenchRow> run_executable(const fs::path& exe, Scope scope, const BenchOptions& o,
                                     const fs::path& tmp) {
  const std::string name = exe.filename().string();
  const fs::path json = tmp / (name + ".json"), err = tmp / (name + ".err");
  // Google Benchmark 1.7 reads --benchmark_min_time as a plain number of seconds and rejects
  // "0.5s"; 1.8 accepts both, so the plain number works with either.
  std::vector<std::string> args = {
      exe.string(), "--benchmark_format=json", "--benchmark_out=" + json.string(),
      "--benchmark_out_format=json", "--benchmark_min_time=" + number_text(o.min_time)};
  if (scope == Scope::kFiltered) args.push_back("--benchmark_filter=" + o.filter);
  check_status(run_process(args, "/dev/null", err), exe, err);
  return bench::parse_benchmark_json(slurp(json), name, json.string());
}

// ---------------------------------------------------------------- the whole run

fs::path default_bench_dir() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

std::optional<std::regex> compile_filter(const std::string& filter) {
  if (filter.empty()) return std::nullopt;
  try {
    return std::regex(filter, std::regex::extended);
  } catch (const std::regex_error& e) {
    throw Error("bench: --filter '" + filter + "' is not a valid regular expression (" + e.what() +
                ")");
  }
}

bench::TableHeader machine_header() {
  char date[64];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", std::localtime(&now));
  std::string cpu = cpu_model() + " (" + std::to_string(std::thread::hardware_concurrency()) +
                    " hardware threads, " + std::to_string(omp_get_max_threads()) +
                    " OpenMP threads)";
  cuda::DeviceReport cuda = cuda::query_devices();
  std::string gpu;
  for (const auto& g : cuda.gpus)
    gpu += (gpu.empty() ? "" : ", ") + g.name;
  if (gpu.empty()) gpu = "none: " + cuda.reason;
  return {date, cpu, gpu};
}

// The outcome of running every chosen executable: their rows, and one message per failure.
struct RunResults {
  std::vector<BenchRow> rows;
  std::vector<std::string> failures;
  int succeeded = 0;  // executables that ran and wrote their JSON
};

RunResults run_all(const std::vector<fs::path>& exes, const BenchOptions& o, const fs::path& tmp) {
  const std::optional<std::regex> re = compile_filter(o.filter);
  const bool progress = ::isatty(STDERR_FILENO);
  RunResults r;
  for (const auto& exe : exes) {
    try {
      Scope scope = choose_scope(exe, o, re, tmp);
      if (scope == Scope::kNone) continue;
      if (progress) std::cerr << "bench: running " << exe.filename().string() << "\n";
      std::vector<BenchRow> rows = run_executable(exe, scope, o, tmp);
      r.rows.insert(r.rows.end(), rows.begin(), rows.end());
      ++r.succeeded;
    } catch (const Error& e) {
      r.failures.push_back(e.what());
    }
  }
  return r;
}

void run_bench(const BenchOptions& o) {
  if (!(o.min_time > 0))
    throw Error("bench: --min-time must be a positive number of seconds, not " +
                number_text(o.min_time));
  const fs::path dir = o.bench_dir.empty() ? default_bench_dir() : fs::path(o.bench_dir);
  const std::vector<fs::path> exes = bench::find_bench_executables(dir);
  if (exes.empty()) {
    throw Error("bench: no bench_* executables in " + dir.string() +
                " (build them, e.g. with `tools/selfsup bench`, or point --bench-dir at them)");
  }
  TempDir tmp;
  RunResults r = run_all(exes, o, tmp.path());
  if (r.succeeded == 0 && r.failures.empty())
    throw Error("bench: --filter '" + o.filter + "' matches no executable or benchmark in " +
                dir.string());
  const bench::TableHeader header = machine_header();
  if (!r.rows.empty()) std::cout << bench::format_text_table(header, r.rows);
  if (!o.json_out.empty()) write_file(o.json_out, bench::rows_to_json(header, r.rows).dump(2));
  if (!o.markdown_out.empty())
    write_file(o.markdown_out, bench::format_markdown_table(header, r.rows));
  if (r.failures.empty()) return;
  tmp.keep();
  std::string more = r.failures.size() > 1
                         ? " (and " + std::to_string(r.failures.size() - 1) + " more failures)"
                         : "";
  throw Error(r.failures.front() + more);
}

void setup_bench(CLI::App& sub) {
  auto opts = std::make_shared<BenchOptions>();  // outlives setup: the callback runs at parse time
  sub.add_option("--filter", opts->filter,
                 "Regular expression: run the executables whose name it matches, and the "
                 "benchmarks it matches in the others");
  sub.add_option("--min-time", opts->min_time, "Minimum seconds of timing per benchmark")
      ->capture_default_str();
  sub.add_option("--bench-dir", opts->bench_dir,
                 "Folder holding the bench_* executables (default: the folder of this selfsup)");
  sub.add_option("--json-out", opts->json_out, "Also write the results as JSON to this file");
  sub.add_option("--markdown-out", opts->markdown_out,
                 "Also write the table as Markdown to this file");
  sub.callback([opts] { run_bench(*opts); });
}

const Registrar kRegistrar("bench", "Run the benchmarks and print one table of their results",
                           &setup_bench);

}  // namespace
}  // namespace selfsup::cli

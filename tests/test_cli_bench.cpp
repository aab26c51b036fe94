// `selfsup bench`: the pure parts (Google Benchmark JSON -> rows -> one table) on hand-written
// JSON, then the built `selfsup` binary (next to this test in the build folder) run on fake bench_*
// executables, small shell scripts that write fixed JSON, so that no real benchmark runs.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/cli_test_util.h"
#include "tools/cli/bench_table.h"

namespace selfsup {
namespace {

namespace fs = std::filesystem;
using cli::bench::BenchRow;

// The shape of Google Benchmark 1.7's JSON: a GEMM with a user counter (and the OpenMP "threads"
// counter that duplicates the standard key), a CUDA run with a label and two counters in ms, and
// a run skipped for lack of a GPU.
const char* kGemmJson = R"({
  "context": {"date": "2026-12-02T15:00:00+00:00", "num_cpus": 2, "library_build_type": "release"},
  "benchmarks": [
    {"name": "matmul/eigen/f32/M:64/real_time", "family_index": 0,
     "per_family_instance_index": 0, "run_name": "matmul/eigen/f32/M:64/real_time",
     "run_type": "iteration", "repetitions": 1, "repetition_index": 0, "threads": 1,
     "iterations": 280000, "real_time": 2500.0, "cpu_time": 2490.5, "time_unit": "ns",
     "GFLOP/s": 12.5, "threads": 2}
  ]
})";

const char* kCudaJson = R"({
  "context": {"date": "2026-12-02T15:00:01+00:00"},
  "benchmarks": [
    {"name": "multi_tensor/op:0/manual_time", "run_type": "iteration", "threads": 1,
     "iterations": 100, "real_time": 1.5, "cpu_time": 1.6, "time_unit": "ms",
     "GB/s": 800.25, "label": "ema_v1_per_tensor", "vs_copy": 0.8349},
    {"name": "BM_NoCuda", "run_type": "iteration", "threads": 1,
     "error_occurred": true, "error_message": "no GPU: this build has no CUDA backend",
     "iterations": 0, "real_time": 0.0, "cpu_time": 0.0, "time_unit": "ns"}
  ]
})";

std::vector<BenchRow> sample_rows() {
  std::vector<BenchRow> rows = cli::bench::parse_benchmark_json(kGemmJson, "bench_cpu_gemm", "g");
  std::vector<BenchRow> cuda = cli::bench::parse_benchmark_json(kCudaJson, "bench_cuda_ema", "c");
  rows.insert(rows.end(), cuda.begin(), cuda.end());
  return rows;
}

cli::bench::TableHeader sample_header() {
  return {"2026-12-02 15:00 UTC", "Test CPU (2 hardware threads, 2 OpenMP threads)",
          "none: no driver"};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

// Throws an Error that contains every fragment.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "no Error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& fragment : fragments)
      EXPECT_NE(msg.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << msg;
  }
}

TEST(BenchTable, ParsesNamesTimesCountersAndSkips) {
  std::vector<BenchRow> rows = sample_rows();
  ASSERT_EQ(rows.size(), 3u);

  EXPECT_EQ(rows[0].executable, "bench_cpu_gemm");
  EXPECT_EQ(rows[0].name, "matmul/eigen/f32/M:64");  // "/real_time" dropped
  EXPECT_EQ(rows[0].label, "");
  EXPECT_FALSE(rows[0].skipped);
  EXPECT_DOUBLE_EQ(rows[0].seconds, 2.5e-6);
  ASSERT_EQ(rows[0].counters.size(), 1u);  // not iterations, threads, real_time, ...
  EXPECT_EQ(rows[0].counters[0].first, "GFLOP/s");
  EXPECT_DOUBLE_EQ(rows[0].counters[0].second, 12.5);

  EXPECT_EQ(rows[1].executable, "bench_cuda_ema");
  EXPECT_EQ(rows[1].name, "multi_tensor/op:0");  // "/manual_time" dropped
  EXPECT_EQ(rows[1].label, "ema_v1_per_tensor");
  EXPECT_DOUBLE_EQ(rows[1].seconds, 1.5e-3);  // time_unit "ms"
  ASSERT_EQ(rows[1].counters.size(), 2u);
  EXPECT_EQ(rows[1].counters[0].first, "GB/s");
  EXPECT_DOUBLE_EQ(rows[1].counters[0].second, 800.25);
  EXPECT_EQ(rows[1].counters[1].first, "vs_copy");
  EXPECT_DOUBLE_EQ(rows[1].counters[1].second, 0.8349);

  EXPECT_EQ(rows[2].name, "BM_NoCuda");
  EXPECT_TRUE(rows[2].skipped);
  EXPECT_EQ(rows[2].skip_reason, "no GPU: this build has no CUDA backend");
  EXPECT_TRUE(rows[2].counters.empty());
}

TEST(BenchTable, SkipWithMessageOfNewerGoogleBenchmark) {
  std::vector<BenchRow> rows = cli::bench::parse_benchmark_json(
      R"({"benchmarks": [{"name": "BM_X", "skipped": true, "skip_message": "not today"}]})",
      "bench_x", "x.json");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_TRUE(rows[0].skipped);
  EXPECT_EQ(rows[0].skip_reason, "not today");
}

TEST(BenchTable, TimesGetAReadableUnit) {
  EXPECT_EQ(cli::bench::format_time(2.5e-6), "2.50 us");
  EXPECT_EQ(cli::bench::format_time(1.5e-3), "1.50 ms");
  EXPECT_EQ(cli::bench::format_time(0.25), "250 ms");
  EXPECT_EQ(cli::bench::format_time(12.0), "12.0 s");
  EXPECT_EQ(cli::bench::format_time(3e-9), "3.00 ns");
  EXPECT_EQ(cli::bench::format_time(-1.0), "");
}

TEST(BenchTable, TextTableHasOneAlignedColumnPerCounter) {
  const std::string text = cli::bench::format_text_table(sample_header(), sample_rows());
  const std::vector<std::string> lines = lines_of(text);
  ASSERT_EQ(lines.size(), 9u) << text;  // 3 header lines, blank, column names, rule, 3 rows
  EXPECT_EQ(lines[0], "selfsup bench, 2026-12-02 15:00 UTC");
  EXPECT_EQ(lines[1], "cpu: Test CPU (2 hardware threads, 2 OpenMP threads)");
  EXPECT_EQ(lines[2], "gpu: none: no driver");
  EXPECT_EQ(lines[3], "");
  EXPECT_TRUE(std::regex_match(
      lines[4], std::regex("executable +benchmark +label +time +GFLOP/s +GB/s +vs_copy")))
      << lines[4];
  EXPECT_TRUE(std::regex_match(lines[5], std::regex("-+( +-+){6}"))) << lines[5];
  EXPECT_TRUE(std::regex_match(lines[6],
                               std::regex("bench_cpu_gemm +matmul/eigen/f32/M:64 +2.50 us +12.5")))
      << lines[6];
  EXPECT_TRUE(std::regex_match(
      lines[7],
      std::regex("bench_cuda_ema +multi_tensor/op:0 +ema_v1_per_tensor +1.50 ms +800 +0.835")))
      << lines[7];
  EXPECT_TRUE(std::regex_match(
      lines[8], std::regex("bench_cuda_ema +BM_NoCuda +skipped: no GPU: this build has no CUDA "
                           "backend")))
      << lines[8];
  // Numbers are right-aligned under their column name.
  auto right_edge = [](const std::string& line, const std::string& cell) {
    return line.find(cell) + cell.size();
  };
  EXPECT_EQ(right_edge(lines[6], "12.5"), right_edge(lines[4], "GFLOP/s"));
  EXPECT_EQ(right_edge(lines[7], "800"), right_edge(lines[4], "GB/s"));
  EXPECT_EQ(right_edge(lines[7], "0.835"), lines[4].size());
  EXPECT_EQ(right_edge(lines[6], "2.50 us"), right_edge(lines[7], "1.50 ms"));
  EXPECT_EQ(lines[6].find("matmul"), lines[4].find("benchmark"));
}

TEST(BenchTable, MarkdownTableHasTheSameCells) {
  const std::string md = cli::bench::format_markdown_table(sample_header(), sample_rows());
  EXPECT_NE(md.find("- date: 2026-12-02 15:00 UTC\n"), std::string::npos) << md;
  EXPECT_NE(md.find("- GPU: none: no driver\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| executable | benchmark | label | time | GFLOP/s | GB/s | vs_copy |\n"
                    "|---|---|---|---:|---:|---:|---:|\n"
                    "| bench_cpu_gemm | matmul/eigen/f32/M:64 |  | 2.50 us | 12.5 |  |  |\n"
                    "| bench_cuda_ema | multi_tensor/op:0 | ema_v1_per_tensor | 1.50 ms |  | 800 "
                    "| 0.835 |\n"
                    "| bench_cuda_ema | BM_NoCuda |  | skipped: no GPU: this build has no CUDA "
                    "backend |  |  |  |\n"),
            std::string::npos)
      << md;
}

TEST(BenchTable, JsonKeepsFullPrecision) {
  nlohmann::json j = cli::bench::rows_to_json(sample_header(), sample_rows());
  EXPECT_EQ(j["cpu"], "Test CPU (2 hardware threads, 2 OpenMP threads)");
  ASSERT_EQ(j["benchmarks"].size(), 3u);
  EXPECT_DOUBLE_EQ(j["benchmarks"][0]["seconds"].get<double>(), 2.5e-6);
  EXPECT_DOUBLE_EQ(j["benchmarks"][1]["counters"]["vs_copy"].get<double>(), 0.8349);
  EXPECT_EQ(j["benchmarks"][1]["label"], "ema_v1_per_tensor");
  EXPECT_TRUE(j["benchmarks"][2]["skipped"].get<bool>());
  EXPECT_TRUE(j["benchmarks"][2]["seconds"].is_null());
  EXPECT_EQ(j["benchmarks"][2]["skip_reason"], "no GPU: this build has no CUDA backend");
}

TEST(BenchTable, BadJsonIsAnErrorNamingTheFile) {
  auto parse = [](const char* text) {
    return [text] { cli::bench::parse_benchmark_json(text, "bench_x", "/tmp/out/bench_x.json"); };
  };
  expect_error(parse("{\"benchmarks\": [ {\"name\": "),
               {"/tmp/out/bench_x.json", "not valid JSON"});
  expect_error(parse("  \n"), {"/tmp/out/bench_x.json", "empty", "bench_x"});
  expect_error(parse(R"({"context": {}})"), {"/tmp/out/bench_x.json", "\"benchmarks\""});
  expect_error(parse(R"({"benchmarks": [{"name": "a", "real_time": 1}, {"real_time": 2}]})"),
               {"/tmp/out/bench_x.json", "benchmark 1"});
  expect_error(parse(R"({"benchmarks": [{"name": "a", "real_time": 1, "time_unit": "min"}]})"),
               {"/tmp/out/bench_x.json", "'min'"});
}

// ---------------------------------------------------------------- finding executables

class BenchFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("selfsup_cli_bench_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // An executable shell script `name` in `folder` with the given body.
  static void write_script(const fs::path& folder, const std::string& name,
                           const std::string& body) {
    fs::create_directories(folder);
    std::ofstream(folder / name) << "#!/bin/sh\n" << body;
    fs::permissions(folder / name, fs::perms::owner_all, fs::perm_options::add);
  }

  fs::path dir_;
};

TEST_F(BenchFolder, MissingFolderIsAnErrorNamingIt) {
  const fs::path missing = dir_ / "no_such_build";
  expect_error([&] { cli::bench::find_bench_executables(missing); },
               {missing.string(), "does not exist"});
  std::ofstream(dir_ / "a_file") << "x";
  expect_error([&] { cli::bench::find_bench_executables(dir_ / "a_file"); },
               {(dir_ / "a_file").string(), "not a folder"});
}

TEST_F(BenchFolder, FindsOnlyExecutableBenchFiles) {
  write_script(dir_, "bench_b", "exit 0\n");
  write_script(dir_, "bench_a", "exit 0\n");
  write_script(dir_, "test_c", "exit 0\n");
  write_script(dir_, "bench_d.json", "exit 0\n");
  std::ofstream(dir_ / "bench_e") << "not executable";
  fs::create_directories(dir_ / "bench_f");
  std::vector<fs::path> found = cli::bench::find_bench_executables(dir_);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0], dir_ / "bench_a");
  EXPECT_EQ(found[1], dir_ / "bench_b");
}

// ---------------------------------------------------------------- the command, end to end

using test::CliResult;
using test::slurp;

// A fake Google Benchmark executable: records its arguments in args.txt beside it, lists one
// benchmark for --benchmark_list_tests when the filter is "one", and writes kCudaJson to the
// --benchmark_out file.
std::string fake_benchmark_script() {
  return std::string(R"(dir=$(dirname "$0")
echo "$@" >"$dir/args.txt"
out=
for a in "$@"; do
  case "$a" in
    --benchmark_list_tests=true) list=1 ;;
    --benchmark_filter=one) one=1 ;;
    --benchmark_out=*) out=${a#--benchmark_out=} ;;
  esac
done
if [ -n "$list" ]; then
  [ -n "$one" ] && echo "multi_tensor/op:0"
  exit 0
fi
cat >"$out" <<'EOF'
)") + kCudaJson +
         "\nEOF\n";
}

class BenchCommand : public BenchFolder {
 protected:
  void SetUp() override {
    BenchFolder::SetUp();
    binary_ = test::selfsup_beside_test();
    if (!fs::exists(binary_)) GTEST_SKIP() << "the selfsup binary is not built at " << binary_;
  }

  // TMPDIR: the folders of the executables' output land in dir_, removed with it.
  CliResult selfsup(const std::string& args) {
    return test::run_cli(binary_, args, dir_, "TMPDIR=" + dir_.string() + " ");
  }

  fs::path binary_;
};

// A failure is one line on stderr that names the problem, and a non-zero exit.
void expect_one_line_error(const CliResult& r, const std::vector<std::string>& fragments) {
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const auto& fragment : fragments)
    EXPECT_NE(r.err.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << r.err;
}

TEST_F(BenchCommand, RunsTheExecutablesAndPrintsOneTable) {
  const fs::path bin = dir_ / "bin";
  write_script(bin, "bench_fake_ema", fake_benchmark_script());
  const fs::path json = dir_ / "out.json", md = dir_ / "out.md";
  CliResult r = selfsup("bench --bench-dir " + bin.string() + " --min-time 0.01 --json-out " +
                        json.string() + " --markdown-out " + md.string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 8u) << r.out;
  EXPECT_TRUE(lines[0].starts_with("selfsup bench, 20")) << lines[0];
  EXPECT_TRUE(lines[1].starts_with("cpu: ")) << lines[1];
  EXPECT_TRUE(lines[2].starts_with("gpu: ")) << lines[2];
  EXPECT_TRUE(
      std::regex_match(lines[4], std::regex("executable +benchmark +label +time +GB/s +vs_copy")))
      << lines[4];
  EXPECT_TRUE(std::regex_match(
      lines[6],
      std::regex("bench_fake_ema +multi_tensor/op:0 +ema_v1_per_tensor +1.50 ms +800 +0.835")))
      << lines[6];
  EXPECT_TRUE(std::regex_match(
      lines[7], std::regex("bench_fake_ema +BM_NoCuda +skipped: no GPU: this build has no CUDA "
                           "backend")))
      << lines[7];

  const std::string args = slurp(bin / "args.txt");
  EXPECT_NE(args.find("--benchmark_min_time=0.01"), std::string::npos) << args;
  EXPECT_NE(args.find("--benchmark_format=json"), std::string::npos) << args;
  EXPECT_EQ(args.find("--benchmark_filter"), std::string::npos) << args;

  nlohmann::json j = nlohmann::json::parse(slurp(json));
  ASSERT_EQ(j["benchmarks"].size(), 2u);
  EXPECT_EQ(j["benchmarks"][0]["executable"], "bench_fake_ema");
  EXPECT_NE(slurp(md).find("| bench_fake_ema | multi_tensor/op:0 | ema_v1_per_tensor | 1.50 ms |"),
            std::string::npos);
}

TEST_F(BenchCommand, FilterPicksExecutablesOrBenchmarks) {
  const fs::path bin = dir_ / "bin";
  write_script(bin, "bench_fake_ema", fake_benchmark_script());
  // "one" is not in the executable's name: it lists its benchmarks, then runs with the filter.
  CliResult r = selfsup("bench --bench-dir " + bin.string() + " --filter one");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("multi_tensor/op:0"), std::string::npos) << r.out;
  EXPECT_NE(slurp(bin / "args.txt").find("--benchmark_filter=one"), std::string::npos);

  expect_one_line_error(selfsup("bench --bench-dir " + bin.string() + " --filter zzz"),
                        {"'zzz'", bin.string()});
}

TEST_F(BenchCommand, FailingExecutablesAreOneLineErrors) {
  const fs::path crash_bin = dir_ / "crash", garbage_bin = dir_ / "garbage", both = dir_ / "both";
  const std::string crash_script =
      "echo 'warming up' >&2\necho 'boom: out of cheese' >&2\nexit 3\n";
  const std::string garbage_script =
      "for a in \"$@\"; do case \"$a\" in --benchmark_out=*) echo 'not json' "
      ">\"${a#--benchmark_out=}\" ;; esac; done\n";
  write_script(crash_bin, "bench_crash", crash_script);
  write_script(garbage_bin, "bench_garbage", garbage_script);
  write_script(both, "bench_crash", crash_script);
  write_script(both, "bench_garbage", garbage_script);

  CliResult crash = selfsup("bench --bench-dir " + crash_bin.string());
  expect_one_line_error(crash, {"bench_crash", "exit 3", "boom: out of cheese"});
  EXPECT_EQ(crash.out, "");
  CliResult garbage = selfsup("bench --bench-dir " + garbage_bin.string());
  expect_one_line_error(garbage, {"bench_garbage.json", "not valid JSON"});
  // After a failure the output folder stays, so the file the message names can be read.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(garbage.err, m, std::regex("(/\\S+/bench_garbage\\.json)")));
  EXPECT_EQ(slurp(m[1].str()), "not json\n");
  expect_one_line_error(selfsup("bench --bench-dir " + both.string()),
                        {"bench_crash", "(and 1 more failures)"});
}

TEST_F(BenchCommand, MissingOrEmptyFolderIsAnError) {
  const fs::path missing = dir_ / "no_such_build";
  expect_one_line_error(selfsup("bench --bench-dir " + missing.string()),
                        {missing.string(), "does not exist"});
  expect_one_line_error(selfsup("bench --bench-dir " + dir_.string()),
                        {"no bench_* executables", dir_.string()});
}

}  // namespace
}  // namespace selfsup

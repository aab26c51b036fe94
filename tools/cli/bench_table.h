// The parts of `selfsup bench` that do not run anything: finding the bench_* executables in a
// folder, reading one executable's Google Benchmark JSON output into rows, and laying the rows
// of all executables out as one table (aligned text for the terminal, Markdown for a file, JSON).
// cmd_bench.cpp runs the executables; the tests call these functions on hand-written input.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace selfsup::cli::bench {

// One benchmark run (one line of Google Benchmark's console output).
struct BenchRow {
  std::string executable;  // "bench_cpu_gemm"
  std::string name;        // "matmul/eigen/f32/M:256/K:256/N:256/At:0" (no "/real_time")
  std::string label;       // state.SetLabel(...), often empty
  double seconds = 0;      // wall (or manual) time per iteration; < 0 when the JSON has none
  std::vector<std::pair<std::string, double>> counters;  // user counters, in file order
  bool skipped = false;  // state.SkipWithError(...) or SkipWithMessage(...)
  std::string skip_reason;
};

// The bench_* executables directly in `dir`, sorted by name. An Error naming the folder when it
// does not exist or is not a folder; an empty list when it holds none.
std::vector<std::filesystem::path> find_bench_executables(const std::filesystem::path& dir);

// The rows of one executable's `--benchmark_out_format=json` output. `source` (the file) names
// the input in the Error thrown for text that is not JSON or lacks the "benchmarks" array.
std::vector<BenchRow> parse_benchmark_json(const std::string& text, const std::string& executable,
                                           const std::string& source);

// 2.5e-4 -> "250 us", 1.5 -> "1.50 s"; blank for a negative time.
std::string format_time(double seconds);

// The lines printed above the table: the date and the machine.
struct TableHeader {
  std::string date;  // "2026-12-02 14:07 UTC"
  std::string cpu;   // "AMD EPYC 9654 (2 cores, 2 OpenMP threads)"
  std::string gpu;   // "NVIDIA H200" or "none: <reason>"
};

// One aligned table: executable, benchmark, label (when any row has one), time, then a column
// per counter name found in any row (blank where a row lacks it). A skipped row shows
// "skipped: <reason>" in the time column.
std::string format_text_table(const TableHeader& header, const std::vector<BenchRow>& rows);

// The same table in Markdown, with the header as a bullet list.
std::string format_markdown_table(const TableHeader& header, const std::vector<BenchRow>& rows);

// The header and the rows as one JSON object.
nlohmann::json rows_to_json(const TableHeader& header, const std::vector<BenchRow>& rows);

}  // namespace selfsup::cli::bench

// See bench_table.h. Google Benchmark's JSON output is one object whose "benchmarks" array holds
// a run per benchmark: its name, real_time/cpu_time in time_unit, and each user counter as one
// more number beside those.
#include "tools/cli/bench_table.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <regex>
#include <set>
#include <string_view>

#include "core/error.h"

namespace selfsup::cli::bench {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

// ---------------------------------------------------------------- finding the executables

bool is_bench_executable(const fs::directory_entry& entry) {
  static const std::regex kName("bench_[A-Za-z0-9_]+");  // no extension: not a .json or .log
  std::error_code ec;
  return std::regex_match(entry.path().filename().string(), kName) && entry.is_regular_file(ec) &&
         ::access(entry.path().c_str(), X_OK) == 0;
}

// ---------------------------------------------------------------- JSON -> rows

// The numbers Google Benchmark writes for every run; any other number is a user counter.
// "threads" is its thread count, but also the name of the CPU benchmarks' OpenMP-threads counter,
// which the JSON writes as a second "threads" key that a parser cannot tell apart: it is left out
// here, and the table's header reports the OpenMP threads instead.
const std::set<std::string> kStandardNumbers = {"family_index",
                                                "per_family_instance_index",
                                                "repetitions",
                                                "repetition_index",
                                                "threads",
                                                "iterations",
                                                "real_time",
                                                "cpu_time",
                                                "cpu_coefficient",
                                                "real_coefficient",
                                                "rms"};

double unit_seconds(const std::string& unit, const std::string& source) {
  if (unit == "ns") return 1e-9;
  if (unit == "us") return 1e-6;
  if (unit == "ms") return 1e-3;
  if (unit == "s") return 1.0;
  throw Error(source + ": unknown time_unit '" + unit + "'");
}

std::string strip_time_suffix(std::string name) {
  for (std::string_view suffix : {"/real_time", "/manual_time"}) {
    if (name.ends_with(suffix)) name.erase(name.size() - suffix.size());
  }
  return name;
}

bool is_true(const ordered_json& run, const char* key) {
  auto it = run.find(key);
  return it != run.end() && it->is_boolean() && it->get<bool>();
}

// Google Benchmark 1.7 marks SkipWithError with error_occurred/error_message; 1.8 adds
// skipped/skip_message for SkipWithMessage.
bool read_skip(const ordered_json& run, BenchRow& row) {
  if (is_true(run, "error_occurred")) {
    row.skip_reason = run.value("error_message", "");
  } else if (is_true(run, "skipped")) {
    row.skip_reason = run.value("skip_message", "");
  } else {
    return false;
  }
  row.skipped = true;
  return true;
}

BenchRow parse_run(const ordered_json& run, const std::string& executable,
                   const std::string& source) {
  BenchRow row;
  row.executable = executable;
  row.name = strip_time_suffix(run.at("name").get<std::string>());
  row.label = run.value("label", "");
  if (read_skip(run, row)) return row;
  row.seconds = run.contains("real_time") ? run.at("real_time").get<double>() *
                                                unit_seconds(run.value("time_unit", "ns"), source)
                                          : -1.0;
  for (const auto& [key, value] : run.items()) {
    if (value.is_number() && !kStandardNumbers.contains(key))
      row.counters.emplace_back(key, value.get<double>());
  }
  return row;
}

// ---------------------------------------------------------------- rows -> cells

std::string printf_string(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Three significant digits, but never a power-of-ten notation for large numbers.
std::string format_counter(double v) {
  return printf_string(std::abs(v) >= 100 ? "%.0f" : "%.3g", v);
}

// The counter names of all rows, each once, in the order they first appear.
std::vector<std::string> counter_names(const std::vector<BenchRow>& rows) {
  std::vector<std::string> names;
  for (const auto& row : rows) {
    for (const auto& [name, value] : row.counters) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }
  return names;
}

struct Table {
  std::vector<std::string> columns;
  size_t time_column = 0;  // this and the columns after it hold numbers
  std::vector<std::vector<std::string>> cells;
};

std::vector<std::string> row_cells(const BenchRow& row, bool with_label,
                                   const std::vector<std::string>& counters) {
  std::vector<std::string> cells = {row.executable, row.name};
  if (with_label) cells.push_back(row.label);
  cells.push_back(row.skipped ? "skipped: " + row.skip_reason : format_time(row.seconds));
  for (const auto& name : counters) {
    auto has_name = [&](const auto& counter) { return counter.first == name; };
    auto it = std::find_if(row.counters.begin(), row.counters.end(), has_name);
    cells.push_back(it == row.counters.end() ? "" : format_counter(it->second));
  }
  return cells;
}

Table build_table(const std::vector<BenchRow>& rows) {
  const bool with_label =
      std::any_of(rows.begin(), rows.end(), [](const auto& r) { return !r.label.empty(); });
  const std::vector<std::string> counters = counter_names(rows);
  Table t;
  t.columns = {"executable", "benchmark"};
  if (with_label) t.columns.push_back("label");
  t.time_column = t.columns.size();
  t.columns.push_back("time");
  t.columns.insert(t.columns.end(), counters.begin(), counters.end());
  for (const auto& row : rows)
    t.cells.push_back(row_cells(row, with_label, counters));
  return t;
}

// ---------------------------------------------------------------- text

// A skipped row's message overflows its column instead of widening it.
std::vector<size_t> column_widths(const Table& t, const std::vector<BenchRow>& rows) {
  std::vector<size_t> widths;
  for (const auto& c : t.columns)
    widths.push_back(c.size());
  for (size_t r = 0; r < t.cells.size(); ++r) {
    for (size_t c = 0; c < t.cells[r].size(); ++c) {
      if (!(rows[r].skipped && c == t.time_column))
        widths[c] = std::max(widths[c], t.cells[r][c].size());
    }
  }
  return widths;
}

std::string pad(const std::string& s, size_t width, bool right) {
  std::string fill(width > s.size() ? width - s.size() : 0, ' ');
  return right ? fill + s : s + fill;
}

std::string text_line(const std::vector<std::string>& cells, const std::vector<size_t>& widths,
                      size_t time_column) {
  std::string line;
  for (size_t c = 0; c < cells.size(); ++c)
    line += (c ? "  " : "") + pad(cells[c], widths[c], c >= time_column);
  line.erase(line.find_last_not_of(' ') + 1);
  return line + "\n";
}

// ---------------------------------------------------------------- Markdown

std::string markdown_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += '\\';
    out += ch;
  }
  return out;
}

std::string markdown_line(const std::vector<std::string>& cells) {
  std::string line = "|";
  for (const auto& cell : cells) {
    line += ' ';
    line += markdown_escape(cell);
    line += " |";
  }
  return line + "\n";
}

}  // namespace

std::vector<fs::path> find_bench_executables(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error("bench: no folder " + dir.string() +
                (fs::exists(dir, ec) ? " (it is not a folder)" : " (it does not exist)"));
  }
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (is_bench_executable(entry)) found.push_back(entry.path());
  }
  if (ec) throw Error("bench: cannot list " + dir.string() + ": " + ec.message());
  std::sort(found.begin(), found.end());
  return found;
}

std::vector<BenchRow> parse_benchmark_json(const std::string& text, const std::string& executable,
                                           const std::string& source) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw Error(source + ": empty (" + executable + " wrote no JSON)");
  ordered_json doc;
  try {
    doc = ordered_json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(source + ": not valid JSON (" + e.what() + ")");
  }
  if (!doc.is_object() || !doc.contains("benchmarks") || !doc["benchmarks"].is_array())
    throw Error(source + ": no \"benchmarks\" array (not Google Benchmark JSON output)");
  std::vector<BenchRow> rows;
  for (const auto& run : doc["benchmarks"]) {
    try {
      rows.push_back(parse_run(run, executable, source));
    } catch (const json::exception& e) {
      throw Error(source + ": benchmark " + std::to_string(rows.size()) + ": " + e.what());
    }
  }
  return rows;
}

std::string format_time(double seconds) {
  if (seconds < 0) return "";
  const std::pair<double, const char*> units[] = {{1.0, "s"}, {1e-3, "ms"}, {1e-6, "us"}};
  double scale = 1e-9;
  const char* unit = "ns";
  for (const auto& [s, u] : units) {
    if (seconds >= s) {
      scale = s;
      unit = u;
      break;
    }
  }
  const double v = seconds / scale;
  return printf_string(v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v) + " " + unit;
}

std::string format_text_table(const TableHeader& header, const std::vector<BenchRow>& rows) {
  const Table t = build_table(rows);
  const std::vector<size_t> widths = column_widths(t, rows);
  std::string out = "selfsup bench, " + header.date + "\n";
  out += "cpu: " + header.cpu + "\ngpu: " + header.gpu + "\n\n";
  out += text_line(t.columns, widths, t.time_column);
  std::vector<std::string> rules;
  for (size_t w : widths)
    rules.push_back(std::string(w, '-'));
  out += text_line(rules, widths, t.time_column);
  for (const auto& cells : t.cells)
    out += text_line(cells, widths, t.time_column);
  return out;
}

std::string format_markdown_table(const TableHeader& header, const std::vector<BenchRow>& rows) {
  const Table t = build_table(rows);
  std::string out = "# selfsup bench\n\n";
  out += "- date: " + header.date + "\n- CPU: " + header.cpu + "\n- GPU: " + header.gpu + "\n\n";
  out += markdown_line(t.columns) + "|";
  for (size_t c = 0; c < t.columns.size(); ++c)
    out += c < t.time_column ? "---|" : "---:|";
  out += "\n";
  for (const auto& cells : t.cells)
    out += markdown_line(cells);
  return out;
}

json rows_to_json(const TableHeader& header, const std::vector<BenchRow>& rows) {
  json runs = json::array();
  for (const auto& row : rows) {
    json j = {{"executable", row.executable}, {"name", row.name}, {"label", row.label}};
    j["skipped"] = row.skipped;
    if (row.skipped) j["skip_reason"] = row.skip_reason;
    j["seconds"] = row.skipped || row.seconds < 0 ? json(nullptr) : json(row.seconds);
    j["counters"] = json::object();
    for (const auto& [name, value] : row.counters)
      j["counters"][name] = value;
    runs.push_back(j);
  }
  return {{"date", header.date}, {"cpu", header.cpu}, {"gpu", header.gpu}, {"benchmarks", runs}};
}

}  // namespace selfsup::cli::bench

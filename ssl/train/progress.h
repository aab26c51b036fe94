// A one-line progress bar for the terminal: epoch, bar, steps, loss, views/s, lr and ETA.
// On a terminal it redraws one line; in a log (not a tty) it prints a line every 10%.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace selfsup::ssl {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total_steps);
  // After step `done` (1-based) of this bar.
  void update(int64_t done, double loss, double views_per_second, double lr);
  // Ends the line.
  void finish();

 private:
  std::string label_;
  int64_t total_;
  bool tty_;
  int64_t last_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
};

// "1:05:09" / "3:07"
std::string format_duration(double seconds);

}  // namespace selfsup::ssl

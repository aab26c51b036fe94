#include "ssl/train/progress.h"

#include <unistd.h>

#include <cstdio>

namespace selfsup::ssl {

std::string format_duration(double seconds) {
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total_steps)
    : label_(std::move(label)),
      total_(total_steps > 0 ? total_steps : 1),
      tty_(isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(int64_t done, double loss, double views_per_second, double lr) {
  int64_t decile = done * 10 / total_;
  if (!tty_ && decile == last_decile_ && done != total_) return;
  last_decile_ = decile;
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double eta = done > 0 ? elapsed * (total_ - done) / done : 0;
  constexpr int kWidth = 24;
  int filled = static_cast<int>(kWidth * done / total_);
  std::string bar(filled, '#');
  bar += std::string(kWidth - filled, '.');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld loss %.4f  %.0f views/s  lr %.2e  ETA %s%s",
               tty_ ? "\r" : "", label_.c_str(), bar.c_str(), static_cast<long long>(done),
               static_cast<long long>(total_), loss, views_per_second, lr,
               format_duration(eta).c_str(), tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace selfsup::ssl

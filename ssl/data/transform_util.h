// Internal helpers shared by the augmentation sources: argument checks whose messages name the
// op and the offending value, and short number formatting for transform names.
#pragma once

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>

#include "core/error.h"
#include "ssl/data/image.h"

namespace selfsup::data::detail {

inline void check_probability(const char* op, float p) {
  SELFSUP_CHECK(p >= 0.0f && p <= 1.0f, op, ": probability p = ", p, " is outside [0, 1]");
}

// lo <= hi, both finite and >= min_value.
inline void check_range(const char* op, const char* what, std::pair<float, float> r,
                        float min_value) {
  SELFSUP_CHECK(r.first <= r.second, op, ": ", what, " range (", r.first, ", ", r.second,
                ") has lo > hi");
  SELFSUP_CHECK(r.first >= min_value && std::isfinite(r.second), op, ": ", what, " range (",
                r.first, ", ", r.second, ") must lie in [", min_value, ", inf)");
}

inline void check_image(const char* op, const Image& img) {
  SELFSUP_CHECK(img.c > 0 && img.h > 0 && img.w > 0 &&
                    static_cast<int64_t>(img.data.size()) == img.c * img.h * img.w,
                op, ": bad image [", img.c, ", ", img.h, ", ", img.w, "] holding ", img.data.size(),
                " values");
}

// Address of pixel (ch, y, x): rows are contiguous, so row copies can memcpy from here.
inline const float* pixel_ptr(const Image& img, int64_t ch, int64_t y, int64_t x) {
  return img.data.data() + (ch * img.h + y) * img.w + x;
}
inline float* pixel_ptr(Image& img, int64_t ch, int64_t y, int64_t x) {
  return img.data.data() + (ch * img.h + y) * img.w + x;
}

// "0.08" rather than "0.080000"
inline std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

inline std::string range_str(std::pair<float, float> r) {
  std::ostringstream os;
  os << "(" << r.first << ", " << r.second << ")";
  return os.str();
}

}  // namespace selfsup::data::detail

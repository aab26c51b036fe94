// One exception type for the whole library. Messages name the op and the offending shapes or
// values, e.g. "matmul: shapes [2, 3] and [4, 5] do not match (3 != 4)".
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace selfsup {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// "[2, 3, 4]"
std::string shape_str(const std::vector<int64_t>& shape);

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace selfsup

// SELFSUP_CHECK(cond, "op: message ", value, ...) throws selfsup::Error when cond is false.
#define SELFSUP_CHECK(cond, ...)                                                 \
  do {                                                                           \
    if (!(cond)) throw ::selfsup::Error(::selfsup::detail::concat(__VA_ARGS__)); \
  } while (0)

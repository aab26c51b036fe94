// Facts about this machine that more than one command prints (`selfsup info`, `selfsup bench`).
#pragma once

#include <string>

namespace selfsup::cli {

// The "model name" line of /proc/cpuinfo (x86 Linux); "unknown" elsewhere.
std::string cpu_model();

}  // namespace selfsup::cli

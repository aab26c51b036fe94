// Shared by the CUDA tests: skip (never fail) where there is no GPU, saying why.
#pragma once

#include <gtest/gtest.h>

#include "kernels/cuda/device_info.h"

// GTEST_SKIP returns from the function it is written in, so this must be a macro used in the
// test body itself.
#define SELFSUP_REQUIRE_GPU()                                                 \
  do {                                                                        \
    ::selfsup::cuda::DeviceReport report_ = ::selfsup::cuda::query_devices(); \
    if (report_.gpus.empty()) GTEST_SKIP() << "no GPU: " << report_.reason;   \
  } while (0)

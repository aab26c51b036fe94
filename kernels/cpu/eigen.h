// Eigen, included in one place so that every file sees it the same way.
//
// GCC 12 with -march=native on an AVX-512 machine reports "'__Y' may be used uninitialized"
// from inside its own avx512fintrin.h (the `__m512 __Y = __Y;` idiom for an undefined
// vector), once per Eigen kernel that packs AVX-512 registers: GCC bug 105593, fixed in
// GCC 12.3 and 13. The warning is in the compiler's header, not in our code or Eigen's, so it
// is silenced here, around the include that pulls that header in, and nowhere else.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <Eigen/Dense>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

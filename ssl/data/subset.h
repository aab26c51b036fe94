// Subsets of a Dataset: the labelled fractions of semi-supervised evaluation (1% / 10% of the
// labels, balanced per class) and the first-n cut of --subset for quick runs.
#pragma once

#include <cstdint>
#include <vector>

#include "ssl/data/dataset.h"

namespace selfsup::data {

// Indices (ascending) of round(fraction * n_c) samples of every class c (at least one), so the
// subset keeps the class balance of the dataset: 1% of Fashion-MNIST train is 60 per class.
// Deterministic for a seed; fraction in (0, 1].
std::vector<int64_t> labelled_subset(const Dataset& ds, double fraction, uint64_t seed);

// Indices (ascending) of exactly count_per_class samples of every class; an Error when a class
// has fewer.
std::vector<int64_t> labelled_subset_per_class(const Dataset& ds, int64_t count_per_class,
                                               uint64_t seed);

// A new Dataset of the given samples, in the given order (images and labels copied).
Dataset take(const Dataset& ds, const std::vector<int64_t>& indices);

// The first min(n, size) samples (a view sharing the images; no copy). n must be positive.
Dataset first_n(const Dataset& ds, int64_t n);

}  // namespace selfsup::data

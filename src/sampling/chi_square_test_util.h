// Goodness-of-fit helper for the sampling tests (header-only, tests only).
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "util/status.h"

namespace kvserve::testing {

// Pearson's statistic sum (observed - expected)^2 / expected.
inline double ChiSquare(const std::vector<int>& observed, const std::vector<double>& probs, int draws) {
  KV_CHECK(observed.size() == probs.size());
  double x = 0.0;
  for (size_t i = 0; i < observed.size(); ++i) {
    const double e = probs[i] * draws;
    x += (observed[i] - e) * (observed[i] - e) / e;
  }
  return x;
}

// Upper tail P(X >= x) of chi-square with an even number of degrees of freedom:
// exp(-x/2) * sum_{i < dof/2} (x/2)^i / i! (exact closed form).
inline double ChiSquarePValueEvenDof(double x, int dof) {
  KV_CHECK(dof > 0 && dof % 2 == 0);
  const double h = x / 2.0;
  double term = 1.0, sum = 0.0;
  for (int i = 0; i < dof / 2; ++i) {
    if (i > 0) term *= h / i;
    sum += term;
  }
  return std::exp(-h) * sum;
}

}  // namespace kvserve::testing

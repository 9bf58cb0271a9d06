// Linear least squares: the fitting code behind the Conductor's estimators.
//
// FitLeastSquares finds w minimising sum_i (rows[i] . w - targets[i])^2 by the
// normal equations, with every column scaled to unit max first (features such as
// n^2 for n ~ 1e5 would otherwise ruin the conditioning) and Gaussian
// elimination with partial pivoting. Expected failures (too few samples, a
// singular system) return Status. Pure function; thread-safe.
#pragma once

#include <span>
#include <vector>

#include "base/status.h"

namespace crescent::conductor {

// REQUIRES: every row has the same width.
Result<std::vector<double>> FitLeastSquares(std::span<const std::vector<double>> rows,
                                            std::span<const double> targets);

}  // namespace crescent::conductor

#include "conductor/least_squares.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace crescent::conductor {

Result<std::vector<double>> FitLeastSquares(std::span<const std::vector<double>> rows,
                                            std::span<const double> targets) {
  if (rows.empty()) return InvalidArgument("least squares: no samples");
  if (rows.size() != targets.size()) return InvalidArgument("least squares: rows and targets differ in count");
  const size_t k = rows[0].size();
  if (k == 0 || k > 64) return InvalidArgument("least squares: need 1 to 64 features");
  if (rows.size() < k) {
    return InvalidArgument("least squares: " + std::to_string(rows.size()) + " samples for " +
                           std::to_string(k) + " coefficients");
  }
  std::vector<double> scale(k, 0.0);
  for (const auto& r : rows) {
    CHECK_EQ(r.size(), k);
    for (size_t j = 0; j < k; ++j) scale[j] = std::max(scale[j], std::fabs(r[j]));
  }
  for (double& s : scale) s = s > 0 ? 1.0 / s : 1.0;

  // Augmented normal equations [A^T A | A^T y] over scaled columns.
  // Row-major [k][k + 1].
  const size_t w1 = k + 1;
  std::vector<double> mat(k * w1, 0.0);
  auto m = [&](size_t r, size_t c) -> double& { return mat[r * w1 + c]; };
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t a = 0; a < k; ++a) {
      const double xa = rows[i][a] * scale[a];
      for (size_t b = 0; b < k; ++b) m(a, b) += xa * rows[i][b] * scale[b];
      m(a, k) += xa * targets[i];
    }
  }
  double max_diag = 0;
  for (size_t a = 0; a < k; ++a) max_diag = std::max(max_diag, std::fabs(m(a, a)));
  for (size_t col = 0; col < k; ++col) {
    size_t piv = col;
    for (size_t r = col + 1; r < k; ++r)
      if (std::fabs(m(r, col)) > std::fabs(m(piv, col))) piv = r;
    if (std::fabs(m(piv, col)) <= 1e-12 * max_diag) {
      return InvalidArgument("least squares: singular system (column " + std::to_string(col) +
                             " is not determined by the samples)");
    }
    for (size_t c = 0; c <= k; ++c) std::swap(m(piv, c), m(col, c));
    for (size_t r = 0; r < k; ++r) {
      if (r == col) continue;
      const double f = m(r, col) / m(col, col);
      if (f == 0) continue;
      for (size_t c = col; c <= k; ++c) m(r, c) -= f * m(col, c);
    }
  }
  std::vector<double> w(k);
  for (size_t j = 0; j < k; ++j) w[j] = m(j, k) / m(j, j) * scale[j];
  return w;
}

}  // namespace crescent::conductor

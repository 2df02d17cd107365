// The per-layer statistics of the training doctor (docs/spec.md §2; docs/doctor.md), each defined
// once here over host arrays. Sums accumulate in double whatever the element type; nothing
// here allocates except the singular-value routines.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/activation.h"

namespace cn {

// ‖x‖₂, ‖x‖∞, ‖a − b‖₂, mean |x| over n values (0 for n = 0; NaN/inf propagate).
template <class T>
double l2_norm(const T* x, int64_t n);
template <class T>
double linf_norm(const T* x, int64_t n);
template <class T>
double l2_distance(const T* a, const T* b, int64_t n);
template <class T>
double mean_abs(const T* x, int64_t n);
// Whether every value is finite; `first` (when given) receives the index of the first
// non-finite value (n when all are finite).
template <class T>
bool all_finite(const T* x, int64_t n, int64_t* first = nullptr);

struct MeanVar {
  double mean = 0, var = 0;  // population variance (divide by n)
};
template <class T>
MeanVar mean_var(const T* x, int64_t n);

// How far the units of a Linear layer are from being identical: ‖[W b] − 1 m‖_F / ‖[W b]‖_F,
// where the rows of [W b] (rows × (cols + 1); b may be null) are the units and m is their
// mean row. 0 when every unit is the same (a zero or constant initialisation, which gradient
// descent never breaks), about √(1 − 1/rows) for random rows; 0 for a zero matrix.
template <class T>
double unit_spread(const T* w, const T* b, int64_t rows, int64_t cols);

// ReLU family (relu, leaky_relu): a unit is active on a sample when its input x > 0.
bool act_can_die(Act kind);
// sigmoid and tanh: f' vanishes for large |x|.
bool act_saturates(Act kind);
// The largest value of f' (sigmoid 1/4, tanh 1; 1 for the others).
double act_max_derivative(Act kind);

// A (sample, unit) entry is saturated when f'(x) < kSaturationDerivRatio · max f'
// (sigmoid: |x| > 4.6, tanh: |x| > 3.0); a unit is saturated when more than
// kSaturationMajority of the batch's samples are.
inline constexpr double kSaturationDerivRatio = 1e-2;
inline constexpr double kSaturationMajority = 0.5;

// active[f] = 1 when x[n, f] > 0 for at least one sample n of the N×F batch, else 0.
template <class T>
void units_active(const T* x, int64_t N, int64_t F, uint8_t* active);
// The share of the F units that are saturated on the N×F batch (x: input, y = f(x)).
template <class T>
double saturated_share(const ActParams& a, const T* x, const T* y, int64_t N, int64_t F);

// Singular values (descending) of the rows×cols row-major matrix A, by LAPACK's dgesdd in
// double precision; min(rows, cols) values. Throws cn::Error when LAPACK fails.
std::vector<double> singular_values(const double* A, int64_t rows, int64_t cols);

struct SingularSummary {
  double sigma_max = 0, sigma_min = 0;
  int64_t numerical_rank = 0;  // #{σ > σ_max · max(rows, cols) · eps}
  double stable_rank = 0;      // ‖A‖_F² / σ_max² = Σσ² / σ_max² (NaN for the zero matrix)
  double tol = 0;
};
SingularSummary summarize_singular_values(const std::vector<double>& sigma, int64_t rows, int64_t cols, double eps);

// Pearson correlation of two equally long vectors; NaN when shorter than 2 or when either
// is constant.
double pearson_correlation(const std::vector<double>& a, const std::vector<double>& b);
// Similarity of two spectra of possibly different lengths: 1 − the Kolmogorov–Smirnov
// distance between the empirical distributions of σ/σ_max. 1 = the same shape; NaN when
// either is empty or all zero.
double spectrum_similarity(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace cn

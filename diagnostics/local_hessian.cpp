#include "diagnostics/local_hessian.h"

#include <algorithm>

#include "core/error.h"
#include "core/memory.h"
#include "diagnostics/eigen.h"
#include "kernels/ops.h"
#include "layers/model.h"
#ifdef CURVNET_HAVE_CUDA
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/eigen.h"
#endif

namespace cn {

namespace {

// X̃ = [x, 1] (N×(I+1)) and D = a''(h) (N×O), in double.
template <class T>
void prepare(const T* x, const T* h, int64_t N, int64_t I, int64_t O, const ActParams& act, std::vector<double>& Xt,
             std::vector<double>& D) {
  const int64_t I1 = I + 1;
  Xt.resize(static_cast<size_t>(N * I1));
  D.resize(static_cast<size_t>(N * O));
#pragma omp parallel for if (N * (I1 + O) > 32768)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < I; ++k) Xt[n * I1 + k] = static_cast<double>(x[n * I + k]);
    Xt[n * I1 + I] = 1.0;
    for (int64_t j = 0; j < O; ++j) {
      const double hv = static_cast<double>(h[n * O + j]);
      D[n * O + j] = act_d2<double>(act, hv, act_f<double>(act, hv));
    }
  }
}

// Blocks [j0, j0+count) into C (count×I1×I1); S: scratch count×N×I1.
void blocks_from(const std::vector<double>& Xt, const std::vector<double>& D, int64_t N, int64_t I1, int64_t O,
                 int64_t j0, int64_t count, double* S, double* C) {
#pragma omp parallel for if (count * N * I1 > 32768)
  for (int64_t c = 0; c < count; ++c) {
    const int64_t j = j0 + c;
    double* s = S + c * N * I1;
    for (int64_t n = 0; n < N; ++n) {
      const double d = D[n * O + j];
      for (int64_t k = 0; k < I1; ++k) s[n * I1 + k] = d * Xt[n * I1 + k];
    }
  }
  // block_j = X̃ᵀ (D_j X̃): one GEMM per unit, X̃ shared (stride 0).
  cpu::gemm_batched<double>(true, false, I1, I1, N, 1.0, Xt.data(), I1, 0, S, I1, N * I1, 0.0, C, I1, I1 * I1, count);
}

void fill_layout_info(LocalHessianResult& r, int64_t I, int64_t O) {
  r.n_blocks = O;
  r.block_size = I + 1;
  r.n_params = O * (I + 1);
  r.is_bias.assign(static_cast<size_t>(r.n_params), false);
  for (int64_t j = 0; j < O; ++j) r.is_bias[O * I + j] = true;
}

LocalHessianResult zero_result(int64_t I, int64_t O, const std::string& reason) {
  LocalHessianResult r;
  r.status = kStatusZeroMatrix;
  r.reason = reason;
  fill_layout_info(r, I, O);
  r.eigenvalues.assign(static_cast<size_t>(r.n_params), 0.0);
  r.diagonal.assign(static_cast<size_t>(r.n_params), 0.0);
  return r;
}

}  // namespace

LocalApplicability local_applicability(const std::vector<LayerSpec>& specs, size_t layer) {
  CN_CHECK_MSG(layer < specs.size(), "local Hessian: layer " << layer << " out of range");
  LocalApplicability a;
  const LayerKind kind = specs[layer].type;
  if (kind == LayerKind::batchnorm) {
    a.status = kStatusNotApplicable;
    a.reason = "BatchNorm layer: the local Hessian covers Linear -> activation blocks";
    return a;
  }
  if (kind != LayerKind::linear) {
    a.status = kStatusNotApplicable;
    a.reason = "layer '" + std::string(layer_kind_name(kind)) + "' has no parameters";
    return a;
  }
  if (layer + 1 == specs.size()) {
    a.status = kStatusZeroMatrix;
    a.reason = "last Linear: no activation follows, S is linear in the parameters";
    return a;
  }
  const LayerSpec& next = specs[layer + 1];
  const LayerKind next_kind = next.type;
  if (next_kind == LayerKind::linear) {
    a.status = kStatusZeroMatrix;
    a.reason = "no activation follows this Linear, S is linear in the parameters";
  } else if (next_kind == LayerKind::batchnorm) {
    a.status = kStatusNotApplicable;
    a.reason = "Linear followed by BatchNorm";
  } else if (next_kind == LayerKind::dropout) {
    a.status = kStatusNotApplicable;
    a.reason = "Linear followed by Dropout before an activation";
  } else {
    a.act = activation_params(next);
    if (act_is_piecewise_linear(a.act.kind)) {
      a.status = kStatusZeroMatrix;
      a.reason = "piecewise-linear activation '" + std::string(layer_kind_name(next_kind)) +
                 "': a'' = 0, the local Hessian is zero";
    } else {
      a.status = kStatusOk;
    }
  }
  return a;
}

template <class T>
std::vector<double> local_hessian_blocks(const T* x, const T* h, int64_t N, int64_t I, int64_t O, const ActParams& act,
                                         int64_t j0, int64_t count) {
  CN_CHECK(N > 0 && I > 0 && O > 0 && j0 >= 0 && count >= 0 && j0 + count <= O);
  const int64_t I1 = I + 1;
  std::vector<double> Xt, D;
  prepare(x, h, N, I, O, act, Xt, D);
  std::vector<double> S(static_cast<size_t>(count * N * I1)), C(static_cast<size_t>(count * I1 * I1));
  blocks_from(Xt, D, N, I1, O, j0, count, S.data(), C.data());
  return C;
}

template <class T>
std::vector<double> local_hessian_full(const T* x, const T* h, int64_t N, int64_t I, int64_t O, const ActParams& act) {
  const int64_t I1 = I + 1, p = O * I1;
  const std::vector<double> C = local_hessian_blocks(x, h, N, I, O, act, 0, O);
  std::vector<double> H(static_cast<size_t>(p * p), 0.0);
  for (int64_t j = 0; j < O; ++j)
    for (int64_t k = 0; k < I1; ++k)
      for (int64_t l = 0; l < I1; ++l)
        H[local_param_index(I, O, j, k) * p + local_param_index(I, O, j, l)] = C[(j * I1 + k) * I1 + l];
  return H;
}

namespace {
// Eigenvalues of `count` unit blocks (I1 × I1, back to back on the host).
BatchedEigResult<double> unit_spectra(const double* C, int64_t I1, int64_t count, Device where) {
#ifdef CURVNET_HAVE_CUDA
  if (where == Device::cuda && I1 <= cuda::batched_max_n<double>()) {
    BatchedEigResult<double> e;
    e.count = count;
    e.n = I1;
    const int64_t m = count * I1 * I1;
    Buffer<double> A(m, Device::cuda), W(count * I1, Device::cuda);
    Buffer<int> info(count, Device::cuda);
    device_copy(Device::cuda, A.data(), Device::cpu, C, static_cast<size_t>(m) * sizeof(double));
    cuda::eigenvalues_batched<double>(A.data(), I1, count, W.data(), cuda::context().stream(), info.data());
    e.values.resize(static_cast<size_t>(count * I1));
    e.info.resize(static_cast<size_t>(count));
    device_copy(Device::cpu, e.values.data(), Device::cuda, W.data(), e.values.size() * sizeof(double));
    device_copy(Device::cpu, e.info.data(), Device::cuda, info.data(), e.info.size() * sizeof(int));
    for (int64_t b = 0; b < count; ++b)
      e.max_symmetry_residual = std::max(e.max_symmetry_residual, symmetry_residual(C + b * I1 * I1, I1));
    return e;
  }
#endif
  (void)where;
  return eigh_batched(C, I1, count);
}
}  // namespace

template <class T>
LocalHessianResult local_hessian_linear(const T* x, const T* h, int64_t N, int64_t I, int64_t O, const ActParams& act,
                                        const LocalHessianOptions& opt) {
  CN_CHECK(N > 0 && I > 0 && O > 0);
  if (act_is_piecewise_linear(act.kind))
    return zero_result(I, O, "piecewise-linear activation: a'' = 0, the local Hessian is zero");
  LocalHessianResult r;
  fill_layout_info(r, I, O);
  r.diagonal.assign(static_cast<size_t>(r.n_params), 0.0);
  r.eigenvalues.reserve(static_cast<size_t>(r.n_params));
  const int64_t I1 = I + 1;
  std::vector<double> Xt, D;
  prepare(x, h, N, I, O, act, Xt, D);
  const int64_t per_unit = (N * I1 + I1 * I1) * static_cast<int64_t>(sizeof(double));
  const int64_t chunk = std::clamp<int64_t>(opt.max_chunk_bytes / std::max<int64_t>(per_unit, 1), 1, O);
  std::vector<double> S(static_cast<size_t>(chunk * N * I1)), C(static_cast<size_t>(chunk * I1 * I1));
  for (int64_t j0 = 0; j0 < O; j0 += chunk) {
    const int64_t count = std::min(chunk, O - j0);
    blocks_from(Xt, D, N, I1, O, j0, count, S.data(), C.data());
    for (int64_t c = 0; c < count; ++c)
      for (int64_t k = 0; k < I1; ++k) r.diagonal[local_param_index(I, O, j0 + c, k)] = C[(c * I1 + k) * I1 + k];
    const BatchedEigResult<double> e = unit_spectra(C.data(), I1, count, opt.eig_device);
    r.max_symmetry_residual = std::max(r.max_symmetry_residual, e.max_symmetry_residual);
    r.max_info = std::max(r.max_info, e.max_info());
    r.eigenvalues.insert(r.eigenvalues.end(), e.values.begin(), e.values.end());
  }
  if (r.max_info > 0) r.reason = "?syevd did not converge on some block (info " + std::to_string(r.max_info) + ")";
  std::sort(r.eigenvalues.begin(), r.eigenvalues.end());
  return r;
}

template <class T>
LocalHessianResult local_hessian(const Sequential<T>& net, size_t layer, int64_t N, const LocalHessianOptions& opt) {
  CN_CHECK_MSG(layer < net.size(), "local Hessian: layer " << layer << " out of range");
  const LocalApplicability a = local_applicability(net.specs(), layer);
  const Layer<T>& l = net.layer(layer);
  if (a.status == kStatusNotApplicable) {
    LocalHessianResult r;
    r.status = kStatusNotApplicable;
    r.reason = a.reason;
    r.n_params = l.num_params();
    return r;
  }
  const int64_t I = l.in_features(), O = l.out_features();
  if (a.status == kStatusZeroMatrix) return zero_result(I, O, a.reason);
  std::vector<T> x(static_cast<size_t>(N * I)), h(static_cast<size_t>(N * O));
  device_copy(Device::cpu, x.data(), net.device(), net.layer_input(layer), x.size() * sizeof(T));
  device_copy(Device::cpu, h.data(), net.device(), net.layer_output(layer), h.size() * sizeof(T));
  return local_hessian_linear(x.data(), h.data(), N, I, O, a.act, opt);
}

SpectralMetrics local_hessian_metrics(const LocalHessianResult& r, const MetricOptions& opt) {
  if (r.status == kStatusNotApplicable) return not_applicable_metrics(r.n_params, r.reason);
  SpectralMetrics m = spectral_metrics(r.eigenvalues, r.diagonal, r.is_bias, opt);
  m.method = "closed_form";
  return m;
}

#define CN_LOCAL_INSTANTIATE(T)                                                                                        \
  template std::vector<double> local_hessian_blocks<T>(const T*, const T*, int64_t, int64_t, int64_t,                  \
                                                       const ActParams&, int64_t, int64_t);                            \
  template std::vector<double> local_hessian_full<T>(const T*, const T*, int64_t, int64_t, int64_t, const ActParams&); \
  template LocalHessianResult local_hessian_linear<T>(const T*, const T*, int64_t, int64_t, int64_t, const ActParams&, \
                                                      const LocalHessianOptions&);                                     \
  template LocalHessianResult local_hessian<T>(const Sequential<T>&, size_t, int64_t, const LocalHessianOptions&);
CN_LOCAL_INSTANTIATE(float)
CN_LOCAL_INSTANTIATE(double)

}  // namespace cn

#include "diagnostics/hessian_blocks.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "kernels/ops.h"
#include "kernels/rops.h"

namespace cn {

uint32_t curvature_draw_id(int64_t layer, CurvatureKind kind) {
  const uint32_t l = layer < 0 ? 0xFFFFFFu : static_cast<uint32_t>(layer);
  return l * 8u + static_cast<uint32_t>(kind);
}

namespace {

template <class T>
void to_device(Device d, T* dst, const T* host, int64_t n) {
  device_copy(d, dst, Device::cpu, host, static_cast<size_t>(n) * sizeof(T));
}
template <class T>
void to_host(T* host, Device d, const T* src, int64_t n) {
  device_copy(Device::cpu, host, d, src, static_cast<size_t>(n) * sizeof(T));
}

template <class T>
std::vector<T> block_to_host(const Buffer<T>& block) {
  std::vector<T> host(static_cast<size_t>(block.size()));
  to_host(host.data(), block.device(), block.data(), block.size());
  return host;
}

}  // namespace

template <class T>
void hvp_block(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, CurvatureMode mode, Buffer<T>& out,
               int64_t chunk) {
  const int64_t p = eng.layer_params(layer);
  CN_CHECK_MSG(p > 0, "layer " << layer << " has no parameters");
  chunk = std::max<int64_t>(1, std::min(chunk, p));
  eng.reserve(b.N, chunk);
  eng.prepare(b.ctx, b.x, b.target, b.N, mode);
  const Device d = eng.net().device();
  out.set_device(d);
  out.resize(p * p);
  // The unit directions of every chunk from one buffer: row k of E (stride 2p) holds its
  // single 1 at p + k, so E + (p - j0) read with stride 2p is rows j0..j0+K-1 of the
  // identity (each row stays inside its own 2p values since 0 <= j0 < p). The ones sit
  // 2p + 1 apart from index p: E is zeroed where it lives and e_0 (2p + 1 long) is added
  // to each of `chunk` rows of width 2p + 1 from there, so only 2p + 1 values travel
  // (the chunk × 2p matrix was 8.5 MB per block at 256 columns and p = 4160).
  const int64_t wide = 2 * p + 1;
  Buffer<T> E(p + chunk * wide, d);
  device_zero(d, E.data(), static_cast<size_t>(E.size()) * sizeof(T));
  std::vector<T> e0(static_cast<size_t>(wide), T(0));
  e0[0] = T(1);
  Buffer<T> first(wide, d);
  to_device(d, first.data(), e0.data(), wide);
  CN_DISPATCH(d, add_row_vector<T>, E.data() + p, first.data(), chunk, wide);
  for (int64_t j0 = 0; j0 < p; j0 += chunk) {
    const int64_t K = std::min(chunk, p - j0);
    // H e_j is column j, which is row j: K consecutive rows of the row-major block.
    eng.apply_range(layer, layer + 1, E.data() + (p - j0), 2 * p, out.data() + j0 * p, p, K);
  }
}

template <class T>
std::vector<T> loss_block(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, int64_t chunk) {
  Buffer<T> block;
  hvp_block(eng, b, layer, CurvatureMode::hessian, block, chunk);
  return block_to_host(block);
}

template <class T>
std::vector<T> ggn_block(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, int64_t chunk) {
  Buffer<T> block;
  hvp_block(eng, b, layer, CurvatureMode::ggn, block, chunk);
  return block_to_host(block);
}

template <class T>
bool kron_applicable(const Sequential<T>& net, size_t layer, bool training) {
  if (layer >= net.size() || net.layer(layer).kind() != LayerKind::linear) return false;
  for (size_t i = layer + 1; i < net.size(); ++i)
    if (!net.layer(i).supports_output_hessian(training)) return false;
  return true;
}

template <class T>
std::vector<T> kron_block(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, CurvatureMode mode) {
  Sequential<T>& net = eng.net();
  CN_CHECK_MSG(
      kron_applicable(net, layer, b.ctx.training),
      "the Kronecker path needs a Linear layer with no BatchNorm in training mode after it (layer " << layer << ")");
  CN_CHECK_MSG(net.device() == Device::cpu, "the Kronecker path runs on the CPU backend");
  const Device d = Device::cpu;
  const PassCtx& c = b.ctx;
  const int64_t N = b.N, C = net.n_outputs();
  eng.prepare(c, b.x, b.target, N, CurvatureMode::hessian);  // dy at every layer
  const size_t L = net.size();
  int64_t maxw = C;
  for (size_t i = layer; i < L; ++i) maxw = std::max(maxw, net.layer(i).out_features());
  std::vector<T> M(static_cast<size_t>(N * maxw * maxw)), tmp(static_cast<size_t>(N * maxw * maxw));
  // The loss: per-sample Hessians in the logits (the 1/N of the mean included).
  CN_DISPATCH(d, loss_output_hessian<T>, eng.loss().kind(), eng.loss().probabilities(), N, C, M.data());
  int64_t F = C;  // current width: M is N × F × F
  for (size_t i = L; i-- > layer + 1;) {
    // Each layer maps M from its output to its input (Wᵀ M W through Linear, the mask
    // through Dropout, ...); the Gauss-Newton part drops the dy terms.
    Layer<T>& l = net.layer(i);
    CN_CHECK(l.out_features() == F);
    l.output_hessian_backward(mode == CurvatureMode::ggn ? nullptr : eng.output_grad(i), M.data(), tmp.data(), N);
    F = l.in_features();
  }
  // H[(o,i),(o',i')] = Σ_n M_n[o,o'] x̃_n[i] x̃_n[i']: one GEMM (O² × N)(N × (I+1)²).
  const int64_t O = net.layer(layer).out_features(), I = net.layer(layer).in_features(), J = I + 1;
  CN_CHECK(F == O);
  const T* x = net.layer_input(layer);
  std::vector<T> X2(static_cast<size_t>(N * J * J));
#pragma omp parallel for if (N * J * J > 32768)
  for (int64_t n = 0; n < N; ++n) {
    T* row = X2.data() + n * J * J;
    for (int64_t i = 0; i < J; ++i) {
      const T xi = i < I ? x[n * I + i] : T(1);
      for (int64_t j = 0; j < J; ++j) row[i * J + j] = xi * (j < I ? x[n * I + j] : T(1));
    }
  }
  std::vector<T> G(static_cast<size_t>(O * O * J * J));
  CN_DISPATCH(d, gemm<T>, true, false, O * O, J * J, N, T(1), M.data(), O * O, X2.data(), J * J, T(0), G.data(), J * J);
  // Into the flat parameter order: weight (o, i) at o*I + i, bias o at O*I + o.
  const int64_t p = O * I + O;
  std::vector<T> block(static_cast<size_t>(p * p));
  auto idx = [&](int64_t o, int64_t i) { return i < I ? o * I + i : O * I + o; };
#pragma omp parallel for if (p * p > 32768)
  for (int64_t o = 0; o < O; ++o)
    for (int64_t o2 = 0; o2 < O; ++o2)
      for (int64_t i = 0; i < J; ++i)
        for (int64_t i2 = 0; i2 < J; ++i2) block[idx(o, i) * p + idx(o2, i2)] = G[(o * O + o2) * J * J + i * J + i2];
  return block;
}

template <class T>
std::vector<T> hessian_diag_hutchinson(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, int64_t probes,
                                       uint64_t seed, uint64_t step, std::vector<double>* std_error) {
  const int64_t p = eng.layer_params(layer);
  CN_CHECK_MSG(p > 0 && probes > 0, "layer " << layer << ": Hutchinson needs parameters and probes");
  const int64_t chunk = std::min<int64_t>(64, probes);
  eng.reserve(b.N, chunk);
  eng.prepare(b.ctx, b.x, b.target, b.N, CurvatureMode::hessian);
  const Device d = eng.net().device();
  Buffer<T> V(chunk * p, d), HV(chunk * p, d);
  std::vector<T> v(static_cast<size_t>(chunk * p)), hv(static_cast<size_t>(chunk * p));
  std::vector<double> acc(static_cast<size_t>(p), 0.0), acc2(static_cast<size_t>(p), 0.0);
  const PhiloxKey key = philox_key(seed, RngStream::curvature);
  const uint32_t draw = curvature_draw_id(static_cast<int64_t>(layer), CurvatureKind::diag);
  for (int64_t q0 = 0; q0 < probes; q0 += chunk) {
    const int64_t K = std::min(chunk, probes - q0);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < p; ++j)
        v[k * p + j] = (philox_word(key, static_cast<uint64_t>((q0 + k) * p + j), draw, step) & 1u) ? T(1) : T(-1);
    to_device(d, V.data(), v.data(), K * p);
    eng.apply_layer(layer, V.data(), HV.data(), K);
    to_host(hv.data(), d, HV.data(), K * p);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < p; ++j) {
        const double sample = static_cast<double>(v[k * p + j]) * hv[k * p + j];
        acc[j] += sample;
        acc2[j] += sample * sample;
      }
  }
  std::vector<T> out(static_cast<size_t>(p));
  const double n = static_cast<double>(probes);
  for (int64_t j = 0; j < p; ++j) out[j] = static_cast<T>(acc[j] / n);
  if (std_error) {  // the sample standard deviation over the probes / sqrt(probes)
    std_error->assign(static_cast<size_t>(p), 0.0);
    if (probes > 1)
      for (int64_t j = 0; j < p; ++j)
        (*std_error)[j] = std::sqrt(std::max(0.0, (acc2[j] - acc[j] * acc[j] / n) / (n - 1)) / n);
  }
  return out;
}

template <class T>
std::vector<T> hessian_diag(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, int64_t dense_max,
                            int64_t probes, uint64_t seed, uint64_t step, std::vector<double>* std_error) {
  const int64_t p = eng.layer_params(layer);
  if (p > dense_max) return hessian_diag_hutchinson(eng, b, layer, probes, seed, step, std_error);
  if (std_error) std_error->assign(static_cast<size_t>(p), 0.0);
  Buffer<T> block;
  hvp_block(eng, b, layer, CurvatureMode::hessian, block);
  // Every (p+1)-th entry, gathered where the block lives: p values travel, not p².
  const Device d = block.device();
  std::vector<int64_t> at(static_cast<size_t>(p));
  for (int64_t j = 0; j < p; ++j) at[j] = j * (p + 1);
  Buffer<int64_t> rows(p, d);
  to_device(d, rows.data(), at.data(), p);
  Buffer<T> diagonal(p, d);
  CN_DISPATCH(d, gather_rows<T>, block.data(), 1, rows.data(), p, diagonal.data());
  return block_to_host(diagonal);
}

template <class T>
std::vector<T> fisher_diag(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer) {
  Sequential<T>& net = eng.net();
  const int64_t p = eng.layer_params(layer);
  CN_CHECK_MSG(p > 0, "layer " << layer << " has no parameters");
  const int64_t N = b.N;
  eng.prepare(b.ctx, b.x, b.target, N, CurvatureMode::hessian);
  return net.layer(layer).fisher_diag(b.ctx, net.layer_input(layer), eng.output_grad(layer), N);
}

namespace {
template <class T>
void ensure_prepared(HvpEngine<T>& eng, const CurvatureBatch<T>& b, CurvatureMode mode, uint64_t* gen) {
  if (!eng.prepared() || eng.generation() != *gen || eng.mode() != mode) {
    eng.prepare(b.ctx, b.x, b.target, b.N, mode);
    *gen = eng.generation();
  }
}
}  // namespace

template <class T>
CurvatureMatVec<T> full_matvec(HvpEngine<T>& eng, const CurvatureBatch<T>& b, CurvatureMode mode) {
  auto gen = std::make_shared<uint64_t>(~uint64_t(0));
  return [&eng, b, mode, gen](const T* v, T* out, int64_t K) {
    ensure_prepared(eng, b, mode, gen.get());
    eng.apply(v, out, K);
  };
}

template <class T>
CurvatureMatVec<T> layer_matvec(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, CurvatureMode mode) {
  auto gen = std::make_shared<uint64_t>(~uint64_t(0));
  return [&eng, b, layer, mode, gen](const T* v, T* out, int64_t K) {
    ensure_prepared(eng, b, mode, gen.get());
    eng.apply_layer(layer, v, out, K);
  };
}

template <class T>
CurvatureMatVec<T> preconditioned_matvec(HvpEngine<T>& eng, const CurvatureBatch<T>& b, const std::vector<T>& precond) {
  const int64_t n = eng.total();
  CN_CHECK_MSG(static_cast<int64_t>(precond.size()) == n,
               "preconditioner has " << precond.size() << " values, the model " << n);
  const Device d = eng.net().device();
  std::vector<T> inv_sqrt(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    CN_CHECK_MSG(precond[i] > T(0), "preconditioner entry " << i << " is not positive");
    inv_sqrt[i] = T(1) / std::sqrt(precond[i]);
  }
  auto dvec = std::make_shared<Buffer<T>>(n, d);
  to_device(d, dvec->data(), inv_sqrt.data(), n);
  auto scratch = std::make_shared<Buffer<T>>(0, d);
  auto gen = std::make_shared<uint64_t>(~uint64_t(0));
  return [&eng, b, dvec, scratch, gen, n, d](const T* v, T* out, int64_t K) {
    ensure_prepared(eng, b, CurvatureMode::hessian, gen.get());
    scratch->resize(K * n);
    CN_DISPATCH(d, scale_rows_by<T>, v, dvec->data(), scratch->data(), n, K);  // P^-½ v
    eng.apply(scratch->data(), out, K);                                        // H P^-½ v
    CN_DISPATCH(d, scale_rows_by<T>, out, dvec->data(), out, n, K);            // P^-½ H P^-½ v
  };
}

#define CN_BLOCKS_INSTANTIATE(T)                                                                                       \
  template std::vector<T> loss_block<T>(HvpEngine<T>&, const CurvatureBatch<T>&, size_t, int64_t);                     \
  template std::vector<T> ggn_block<T>(HvpEngine<T>&, const CurvatureBatch<T>&, size_t, int64_t);                      \
  template void hvp_block<T>(HvpEngine<T>&, const CurvatureBatch<T>&, size_t, CurvatureMode, Buffer<T>&, int64_t);     \
  template bool kron_applicable<T>(const Sequential<T>&, size_t, bool);                                                \
  template std::vector<T> kron_block<T>(HvpEngine<T>&, const CurvatureBatch<T>&, size_t, CurvatureMode);               \
  template std::vector<T> hessian_diag<T>(HvpEngine<T>&, const CurvatureBatch<T>&, size_t, int64_t, int64_t, uint64_t, \
                                          uint64_t, std::vector<double>*);                                             \
  template std::vector<T> hessian_diag_hutchinson<T>(HvpEngine<T>&, const CurvatureBatch<T>&, size_t, int64_t,         \
                                                     uint64_t, uint64_t, std::vector<double>*);                        \
  template std::vector<T> fisher_diag<T>(HvpEngine<T>&, const CurvatureBatch<T>&, size_t);                             \
  template CurvatureMatVec<T> full_matvec<T>(HvpEngine<T>&, const CurvatureBatch<T>&, CurvatureMode);                  \
  template CurvatureMatVec<T> layer_matvec<T>(HvpEngine<T>&, const CurvatureBatch<T>&, size_t, CurvatureMode);         \
  template CurvatureMatVec<T> preconditioned_matvec<T>(HvpEngine<T>&, const CurvatureBatch<T>&, const std::vector<T>&);
CN_BLOCKS_INSTANTIATE(float)
CN_BLOCKS_INSTANTIATE(double)

}  // namespace cn

// Every CUDA op of kernels/ops.h and kernels/rops.h against its CPU twin on random inputs
// (never zeros), float32 and float64. Metric: nmse = sum (gpu - cpu)^2 / sum cpu^2 over an
// op's output. Tolerances (the reason for each is beside it in Tol<T>). Skipped, with the
// reason, when no CUDA device is visible; compiled only in builds with the CUDA backend.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/device.h"

#ifdef CURVNET_HAVE_CUDA
#include "core/memory.h"
#include "kernels/ops.h"
#include "kernels/rops.h"

using namespace cn;

namespace {

template <class T>
struct Tol;
template <>
struct Tol<float> {
  // Elementwise: the device's expf/erff/tanhf/log1pf (<= 2 ulp) against glibc's (<= 1 ulp)
  // and FMA contraction on the device: a few ulp relative, (3.6e-7)^2 ~ 1e-13.
  static constexpr double elementwise = 1e-12;
  // Sums and GEMMs: another summation order (tiles, cuBLAS) over up to ~100 terms:
  // ~sqrt(K) eps relative per entry.
  static constexpr double reduction = 1e-10;
  // Mean loss (per-row terms in float, summed in double on both sides).
  static constexpr double loss_rel = 1e-5;
};
template <>
struct Tol<double> {
  static constexpr double elementwise = 1e-26;  // a few ulp of 2.2e-16, squared
  static constexpr double reduction = 1e-24;    // summation order only
  static constexpr double loss_rel = 1e-13;
};

#define REQUIRE_GPU() \
  if (!cn::cuda_available()) GTEST_SKIP() << "no CUDA device visible: " << cn::cuda_device_description()

template <class T>
std::vector<T> random_vec(int64_t n, uint32_t seed, double lo = -2.0, double hi = 2.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) {
    double d = u(rng);
    if (d == 0.0) d = 0.5 * hi;  // never an exact zero
    x = static_cast<T>(d);
  }
  return v;
}

// One host array and its device copy; outputs start as the same random garbage on both,
// so an op that forgets to write (or adds where it should assign) shows up.
template <class T>
struct Twin {
  std::vector<T> h;
  Buffer<T> d;
  explicit Twin(std::vector<T> v) : h(std::move(v)), d(static_cast<int64_t>(h.size()), Device::cuda) {
    device_copy(Device::cuda, d.data(), Device::cpu, h.data(), h.size() * sizeof(T));
  }
  T* hp() { return h.data(); }
  T* dp() { return d.data(); }
  std::vector<T> down() const {
    std::vector<T> out(h.size());
    device_copy(Device::cpu, out.data(), Device::cuda, d.data(), h.size() * sizeof(T));
    return out;
  }
};

template <class T>
Twin<T> twin(int64_t n, uint32_t seed, double lo = -2.0, double hi = 2.0) {
  return Twin<T>(random_vec<T>(n, seed, lo, hi));
}

template <class T>
double nmse(const std::vector<T>& got, const std::vector<T>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - static_cast<double>(want[i]);
    num += d * d;
    den += static_cast<double>(want[i]) * static_cast<double>(want[i]);
  }
  if (!std::isfinite(num)) return INFINITY;
  return den > 0 ? num / den : num;
}

// The device copy of `t` matches its host copy within `tol` (nmse).
#define EXPECT_TWIN(t, tol) EXPECT_LE(nmse((t).down(), (t).h), (tol)) << #t

template <class T>
class CudaOps : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CudaOps, Types);

// ---- ops.h -----------------------------------------------------------------------------

TYPED_TEST(CudaOps, Gemm) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t M = 37, Nc = 29, K = 53, pad = 3;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : Nc) + pad, ldc = Nc + pad;
      auto A = twin<T>((ta ? K : M) * lda, 1), B = twin<T>((tb ? Nc : K) * ldb, 2), C = twin<T>(M * ldc, 3);
      cpu::gemm<T>(ta, tb, M, Nc, K, T(0.7), A.hp(), lda, B.hp(), ldb, T(0.3), C.hp(), ldc);
      cuda::gemm<T>(ta, tb, M, Nc, K, T(0.7), A.dp(), lda, B.dp(), ldb, T(0.3), C.dp(), ldc);
      EXPECT_LE(nmse(C.down(), C.h), Tol<T>::reduction) << "ta=" << ta << " tb=" << tb;
    }
  // K = 0: C = beta C.
  auto C = twin<T>(M * Nc, 4);
  cpu::gemm<T>(false, false, M, Nc, 0, T(1), nullptr, 1, nullptr, Nc, T(0.5), C.hp(), Nc);
  cuda::gemm<T>(false, false, M, Nc, 0, T(1), nullptr, 1, nullptr, Nc, T(0.5), C.dp(), Nc);
  EXPECT_TWIN(C, Tol<T>::elementwise);
}

TYPED_TEST(CudaOps, GemmBatched) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t M = 11, Nc = 13, K = 17, count = 4;
  const int64_t sA = K * M + 5, sB = Nc * K + 7, sC = M * Nc + 2;  // ta, tb: A is K x M, B is Nc x K
  auto A = twin<T>(sA * count, 5), B = twin<T>(sB * count, 6), C = twin<T>(sC * count, 7);
  cpu::gemm_batched<T>(true, true, M, Nc, K, T(1.3), A.hp(), M, sA, B.hp(), K, sB, T(-0.4), C.hp(), Nc, sC, count);
  cuda::gemm_batched<T>(true, true, M, Nc, K, T(1.3), A.dp(), M, sA, B.dp(), K, sB, T(-0.4), C.dp(), Nc, sC, count);
  EXPECT_TWIN(C, Tol<T>::reduction);
}

TYPED_TEST(CudaOps, AddRowVectorAndColumnSum) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t N = 67, O = 45;  // O not a multiple of the 32-column tile
  auto y = twin<T>(N * O, 8), b = twin<T>(O, 9);
  cpu::add_row_vector<T>(y.hp(), b.hp(), N, O);
  cuda::add_row_vector<T>(y.dp(), b.dp(), N, O);
  EXPECT_TWIN(y, Tol<T>::elementwise);
  for (bool acc : {false, true}) {
    auto s = twin<T>(O, 10);
    cpu::column_sum<T>(y.hp(), N, O, s.hp(), acc);
    cuda::column_sum<T>(y.dp(), N, O, s.dp(), acc);
    EXPECT_LE(nmse(s.down(), s.h), Tol<T>::reduction) << "accumulate=" << acc;
  }
}

TYPED_TEST(CudaOps, Activations) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t n = 5000;
  for (Act k : {Act::identity, Act::relu, Act::leaky_relu, Act::elu, Act::sigmoid, Act::tanh, Act::gelu,
                Act::softplus}) {
    ActParams a;
    a.kind = k;
    a.slope = 0.03;
    a.alpha = 0.7;
    auto x = twin<T>(n, 11, -6.0, 6.0), y = twin<T>(n, 12), dy = twin<T>(n, 13), dx = twin<T>(n, 14);
    cpu::act_forward<T>(a, x.hp(), y.hp(), n);
    cuda::act_forward<T>(a, x.dp(), y.dp(), n);
    EXPECT_TWIN(y, Tol<T>::elementwise) << " act " << static_cast<int>(k);
    // The backward on the same (host-computed) y on both sides.
    Twin<T> yh(y.h);
    cpu::act_backward<T>(a, x.hp(), yh.hp(), dy.hp(), dx.hp(), n);
    cuda::act_backward<T>(a, x.dp(), yh.dp(), dy.dp(), dx.dp(), n);
    EXPECT_TWIN(dx, Tol<T>::elementwise) << " act " << static_cast<int>(k);
  }
}

TYPED_TEST(CudaOps, BatchNormTrain) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t N = 70, O = 37;
  const double eps = 1e-5;
  auto x = twin<T>(N * O, 15, -3.0, 5.0), gamma = twin<T>(O, 16), beta = twin<T>(O, 17);
  auto y = twin<T>(N * O, 18), xhat = twin<T>(N * O, 19), mean = twin<T>(O, 20), inv_std = twin<T>(O, 21);
  cpu::bn_forward_train<T>(x.hp(), gamma.hp(), beta.hp(), N, O, eps, y.hp(), xhat.hp(), mean.hp(), inv_std.hp());
  cuda::bn_forward_train<T>(x.dp(), gamma.dp(), beta.dp(), N, O, eps, y.dp(), xhat.dp(), mean.dp(), inv_std.dp());
  EXPECT_TWIN(y, Tol<T>::reduction);
  EXPECT_TWIN(xhat, Tol<T>::reduction);
  EXPECT_TWIN(mean, Tol<T>::reduction);
  EXPECT_TWIN(inv_std, Tol<T>::reduction);

  // Backward and the running update from the host's forward results on both sides.
  Twin<T> xh(xhat.h), is(inv_std.h), mu(mean.h);
  auto dy = twin<T>(N * O, 22), dx = twin<T>(N * O, 23), dg = twin<T>(O, 24), db = twin<T>(O, 25);
  cpu::bn_backward_train<T>(dy.hp(), xh.hp(), gamma.hp(), is.hp(), N, O, dx.hp(), dg.hp(), db.hp());
  cuda::bn_backward_train<T>(dy.dp(), xh.dp(), gamma.dp(), is.dp(), N, O, dx.dp(), dg.dp(), db.dp());
  EXPECT_TWIN(dx, Tol<T>::reduction);
  EXPECT_TWIN(dg, Tol<T>::reduction);
  EXPECT_TWIN(db, Tol<T>::reduction);

  auto rm = twin<T>(O, 26), rv = twin<T>(O, 27, 0.5, 2.0);
  cpu::bn_update_running<T>(mu.hp(), is.hp(), N, O, eps, 0.1, rm.hp(), rv.hp());
  cuda::bn_update_running<T>(mu.dp(), is.dp(), N, O, eps, 0.1, rm.dp(), rv.dp());
  EXPECT_TWIN(rm, Tol<T>::elementwise);
  EXPECT_TWIN(rv, Tol<T>::elementwise);
}

TYPED_TEST(CudaOps, BatchNormEval) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t N = 50, O = 33;
  const double eps = 1e-5;
  auto x = twin<T>(N * O, 28), gamma = twin<T>(O, 29), beta = twin<T>(O, 30);
  auto rm = twin<T>(O, 31), rv = twin<T>(O, 32, 0.5, 2.0);
  auto y = twin<T>(N * O, 33), xhat = twin<T>(N * O, 34), inv_std = twin<T>(O, 35);
  cpu::bn_forward_eval<T>(x.hp(), gamma.hp(), beta.hp(), rm.hp(), rv.hp(), N, O, eps, y.hp(), xhat.hp(), inv_std.hp());
  cuda::bn_forward_eval<T>(x.dp(), gamma.dp(), beta.dp(), rm.dp(), rv.dp(), N, O, eps, y.dp(), xhat.dp(),
                           inv_std.dp());
  EXPECT_TWIN(y, Tol<T>::elementwise);
  EXPECT_TWIN(xhat, Tol<T>::elementwise);
  EXPECT_TWIN(inv_std, Tol<T>::elementwise);

  Twin<T> xh(xhat.h), is(inv_std.h);
  auto dy = twin<T>(N * O, 36), dx = twin<T>(N * O, 37), dg = twin<T>(O, 38), db = twin<T>(O, 39);
  cpu::bn_backward_eval<T>(dy.hp(), xh.hp(), gamma.hp(), is.hp(), N, O, dx.hp(), dg.hp(), db.hp());
  cuda::bn_backward_eval<T>(dy.dp(), xh.dp(), gamma.dp(), is.dp(), N, O, dx.dp(), dg.dp(), db.dp());
  EXPECT_TWIN(dx, Tol<T>::elementwise);
  EXPECT_TWIN(dg, Tol<T>::reduction);
  EXPECT_TWIN(db, Tol<T>::reduction);
}

TYPED_TEST(CudaOps, DropoutSameMaskAsCpu) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t n = 10007;
  const PhiloxKey key = philox_key(1234, RngStream::dropout);
  auto x = twin<T>(n, 40), y = twin<T>(n, 41), mask = twin<T>(n, 42);
  cpu::dropout_forward<T>(x.hp(), y.hp(), mask.hp(), n, 0.3, key, 2, 17);
  cuda::dropout_forward<T>(x.dp(), y.dp(), mask.dp(), n, 0.3, key, 2, 17);
  EXPECT_EQ(mask.down(), mask.h) << "the mask is integer Philox math: it must match bit for bit";
  EXPECT_EQ(y.down(), y.h);
  auto z = twin<T>(n, 43);
  cpu::multiply<T>(x.hp(), mask.hp(), z.hp(), n);
  cuda::multiply<T>(x.dp(), mask.dp(), z.dp(), n);
  EXPECT_EQ(z.down(), z.h) << "one IEEE product per element";
}

TYPED_TEST(CudaOps, Losses) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t N = 300, C = 10;
  for (LossKind kind : {LossKind::cross_entropy, LossKind::mse, LossKind::bce_logits}) {
    auto z = twin<T>(N * C, 44, -4.0, 4.0), dz = twin<T>(N * C, 45), p = twin<T>(N * C, 46);
    std::vector<T> target_h = random_vec<T>(N * C, 47, 0.0, 1.0);  // mse/bce targets in (0, 1)
    if (kind == LossKind::cross_entropy)
      for (int64_t n = 0; n < N; ++n) target_h[n] = static_cast<T>((n * 7 + 3) % C);
    Twin<T> target(target_h);
    double want = 0, got = 0;
    Buffer<double> mean(1, Device::cuda);
    cpu::loss_forward_backward<T>(kind, z.hp(), target.hp(), N, C, dz.hp(), p.hp(), &want);
    cuda::loss_forward_backward<T>(kind, z.dp(), target.dp(), N, C, dz.dp(), p.dp(), mean.data());
    device_copy(Device::cpu, &got, Device::cuda, mean.data(), sizeof(double));
    const char* name = kind == LossKind::cross_entropy ? "cross_entropy" : kind == LossKind::mse ? "mse" : "bce";
    EXPECT_LE(std::fabs(got - want) / std::fabs(want), Tol<T>::loss_rel) << name;
    EXPECT_TWIN(dz, Tol<T>::elementwise) << name;
    if (kind != LossKind::mse) EXPECT_TWIN(p, Tol<T>::elementwise) << name;
  }
}

// ---- rops.h ----------------------------------------------------------------------------

TYPED_TEST(CudaOps, RStridedLinearOps) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t K = 3, N = 41, O = 35, stride = O + 6;
  auto y = twin<T>(K * N * O, 50), b = twin<T>(K * stride, 51);
  cpu::add_row_vector_strided<T>(y.hp(), b.hp(), stride, K, N, O);
  cuda::add_row_vector_strided<T>(y.dp(), b.dp(), stride, K, N, O);
  EXPECT_TWIN(y, Tol<T>::elementwise);

  auto s = twin<T>(K * stride, 52);
  cpu::column_sum_strided<T>(y.hp(), K, N, O, s.hp(), stride);
  cuda::column_sum_strided<T>(Twin<T>(y.h).dp(), K, N, O, s.dp(), stride);
  EXPECT_TWIN(s, Tol<T>::reduction);

  auto packed = twin<T>(K * O, 53);
  cpu::pack_strided<T>(b.hp(), stride, O, packed.hp(), K);
  cuda::pack_strided<T>(b.dp(), stride, O, packed.dp(), K);
  EXPECT_EQ(packed.down(), packed.h);

  auto S = twin<T>(N * K * O, 54);
  for (bool acc : {false, true})
    for (bool with_vb : {false, true}) {
      auto Ry = twin<T>(K * N * O, 55);
      cpu::linear_r_unstack<T>(S.hp(), with_vb ? b.hp() : nullptr, stride, Ry.hp(), K, N, O, acc);
      cuda::linear_r_unstack<T>(S.dp(), with_vb ? b.dp() : nullptr, stride, Ry.dp(), K, N, O, acc);
      EXPECT_TWIN(Ry, Tol<T>::elementwise) << "accumulate=" << acc << " Vb=" << with_vb;
    }
}

TYPED_TEST(CudaOps, RActivationOps) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t n = 777, K = 3;
  for (Act k : {Act::relu, Act::elu, Act::sigmoid, Act::tanh, Act::gelu, Act::softplus}) {
    ActParams a;
    a.kind = k;
    auto x = twin<T>(n, 60, -4.0, 4.0);
    std::vector<T> yh(static_cast<size_t>(n));
    cpu::act_forward<T>(a, x.hp(), yh.data(), n);
    Twin<T> y(yh);
    auto dy = twin<T>(n, 61), Rx = twin<T>(K * n, 62), Rdy = twin<T>(K * n, 63);
    auto Ry = twin<T>(K * n, 64), Rdx = twin<T>(K * n, 65), Rdx1 = twin<T>(K * n, 66);
    cpu::act_rforward<T>(a, x.hp(), y.hp(), Rx.hp(), Ry.hp(), n, K);
    cuda::act_rforward<T>(a, x.dp(), y.dp(), Rx.dp(), Ry.dp(), n, K);
    EXPECT_TWIN(Ry, Tol<T>::elementwise) << static_cast<int>(k);
    cpu::act_rbackward<T>(a, x.hp(), y.hp(), dy.hp(), Rx.hp(), Rdy.hp(), Rdx.hp(), n, K);
    cuda::act_rbackward<T>(a, x.dp(), y.dp(), dy.dp(), Rx.dp(), Rdy.dp(), Rdx.dp(), n, K);
    EXPECT_TWIN(Rdx, Tol<T>::elementwise) << static_cast<int>(k);
    cpu::act_rbackward<T>(a, x.hp(), y.hp(), nullptr, Rx.hp(), Rdy.hp(), Rdx1.hp(), n, K);  // Gauss-Newton
    cuda::act_rbackward<T>(a, x.dp(), y.dp(), nullptr, Rx.dp(), Rdy.dp(), Rdx1.dp(), n, K);
    EXPECT_TWIN(Rdx1, Tol<T>::elementwise) << static_cast<int>(k);

    const int64_t N = 7, F = 9;  // the Kronecker path: per-sample F x F Hessians
    auto xs = twin<T>(N * F, 67, -3.0, 3.0);
    std::vector<T> ysh(static_cast<size_t>(N * F));
    cpu::act_forward<T>(a, xs.hp(), ysh.data(), N * F);
    Twin<T> ys(ysh);
    auto dys = twin<T>(N * F, 68), M = twin<T>(N * F * F, 69);
    cpu::act_hess_backward<T>(a, xs.hp(), ys.hp(), dys.hp(), M.hp(), N, F);
    cuda::act_hess_backward<T>(a, xs.dp(), ys.dp(), dys.dp(), M.dp(), N, F);
    EXPECT_TWIN(M, Tol<T>::elementwise) << static_cast<int>(k);
  }
}

TYPED_TEST(CudaOps, RElementwiseOps) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t n = 901, K = 4;
  auto X = twin<T>(K * n, 70), m = twin<T>(n, 71), Y = twin<T>(K * n, 72), Y0 = twin<T>(K * n, 73);
  cpu::multiply_k<T>(X.hp(), m.hp(), Y.hp(), n, K);
  cuda::multiply_k<T>(X.dp(), m.dp(), Y.dp(), n, K);
  EXPECT_EQ(Y.down(), Y.h);
  cpu::multiply_k<T>(nullptr, m.hp(), Y0.hp(), n, K);
  cuda::multiply_k<T>(nullptr, m.dp(), Y0.dp(), n, K);
  EXPECT_EQ(Y0.down(), Y0.h);

  auto sq = twin<T>(n, 74);
  cpu::scaled_square<T>(m.hp(), sq.hp(), n, T(0.37));
  cuda::scaled_square<T>(m.dp(), sq.dp(), n, T(0.37));
  EXPECT_TWIN(sq, Tol<T>::elementwise);

  auto Z = twin<T>(K * n, 75);
  cpu::scale_rows_by<T>(X.hp(), m.hp(), Z.hp(), n, K);
  cuda::scale_rows_by<T>(X.dp(), m.dp(), Z.dp(), n, K);
  EXPECT_EQ(Z.down(), Z.h);

  const int64_t N = 6, F = 8;
  for (int64_t rowstride : {int64_t(0), F}) {
    auto d = twin<T>(N * F, 76), M = twin<T>(N * F * F, 77);
    cpu::hess_diag_sandwich<T>(d.hp(), rowstride, M.hp(), N, F);
    cuda::hess_diag_sandwich<T>(d.dp(), rowstride, M.dp(), N, F);
    EXPECT_TWIN(M, Tol<T>::elementwise) << "rowstride " << rowstride;
  }
}

TYPED_TEST(CudaOps, RBatchNorm) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t N = 45, O = 39, K = 3, vs = 2 * O + 5, hs = 2 * O + 3;
  auto xhat = twin<T>(N * O, 80), inv_std = twin<T>(O, 81, 0.5, 2.0), gamma = twin<T>(O, 82);
  auto Rx = twin<T>(K * N * O, 83), V = twin<T>(K * vs, 84), dy = twin<T>(N * O, 85), Rdy = twin<T>(K * N * O, 86);
  for (bool training : {true, false})
    for (bool with_rx : {true, false}) {
      auto Rxhat = twin<T>(K * N * O, 87), Rstat = twin<T>(K * O, 88), Ry = twin<T>(K * N * O, 89);
      const T* rx_h = with_rx ? Rx.hp() : nullptr;
      const T* rx_d = with_rx ? Rx.dp() : nullptr;
      cpu::bn_rforward<T>(training, xhat.hp(), inv_std.hp(), gamma.hp(), rx_h, V.hp(), V.hp() + O, vs, N, O, K,
                          Rxhat.hp(), Rstat.hp(), Ry.hp());
      cuda::bn_rforward<T>(training, xhat.dp(), inv_std.dp(), gamma.dp(), rx_d, V.dp(), V.dp() + O, vs, N, O, K,
                           Rxhat.dp(), Rstat.dp(), Ry.dp());
      const std::string what = std::string(training ? "train" : "eval") + (with_rx ? " Rx" : " no Rx");
      EXPECT_TWIN(Rxhat, Tol<T>::reduction) << what;
      EXPECT_TWIN(Ry, Tol<T>::reduction) << what;
      if (training) EXPECT_TWIN(Rstat, Tol<T>::reduction) << what;

      Twin<T> rxh(Rxhat.h), rst(Rstat.h);
      for (bool with_dy : {true, false}) {
        auto Rdx = twin<T>(K * N * O, 90), HV = twin<T>(K * hs, 91);
        cpu::bn_rbackward<T>(training, with_dy ? dy.hp() : nullptr, xhat.hp(), inv_std.hp(), gamma.hp(), rxh.hp(),
                             rst.hp(), V.hp(), vs, Rdy.hp(), N, O, K, Rdx.hp(), HV.hp(), hs);
        cuda::bn_rbackward<T>(training, with_dy ? dy.dp() : nullptr, xhat.dp(), inv_std.dp(), gamma.dp(), rxh.dp(),
                              rst.dp(), V.dp(), vs, Rdy.dp(), N, O, K, Rdx.dp(), HV.dp(), hs);
        EXPECT_TWIN(Rdx, Tol<T>::reduction) << what << (with_dy ? " dy" : " no dy");
        EXPECT_TWIN(HV, Tol<T>::reduction) << what << (with_dy ? " dy" : " no dy");
      }
    }
}

TYPED_TEST(CudaOps, RLosses) {
  REQUIRE_GPU();
  using T = TypeParam;
  const int64_t N = 40, C = 7, K = 3;
  for (LossKind kind : {LossKind::cross_entropy, LossKind::mse, LossKind::bce_logits}) {
    auto p = twin<T>(N * C, 92, 0.01, 0.99), Rz = twin<T>(K * N * C, 93), Rdz = twin<T>(K * N * C, 94);
    cpu::loss_rbackward<T>(kind, p.hp(), Rz.hp(), Rdz.hp(), N, C, K);
    cuda::loss_rbackward<T>(kind, p.dp(), Rz.dp(), Rdz.dp(), N, C, K);
    EXPECT_TWIN(Rdz, Tol<T>::elementwise) << static_cast<int>(kind);
    auto M = twin<T>(N * C * C, 95);
    cpu::loss_output_hessian<T>(kind, p.hp(), N, C, M.hp());
    cuda::loss_output_hessian<T>(kind, p.dp(), N, C, M.dp());
    EXPECT_TWIN(M, Tol<T>::elementwise) << static_cast<int>(kind);
  }
}

}  // namespace

#else  // !CURVNET_HAVE_CUDA

TEST(CudaOps, NotBuilt) { GTEST_SKIP() << "curvnet was built without the CUDA backend"; }

#endif

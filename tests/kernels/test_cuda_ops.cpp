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
#include <algorithm>
#include <iostream>

#include "core/memory.h"
#include "cuda_test_util.h"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/ops.h"
#include "kernels/rops.h"

using namespace cn;
using test::nmse;
using test::to_device;
using test::to_host;

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
  return Twin<T>(test::random_values<T>(n, seed, lo, hi));
}

// The device copy of `t` matches its host copy within `tol` (nmse).
#define EXPECT_TWIN(t, tol) EXPECT_LE(nmse((t).down(), (t).h), (tol)) << #t

// Sums of K products or values: rounding grows with the number of terms (~K eps^2 nmse).
template <class T>
double sum_tol(int64_t K) {
  return Tol<T>::reduction * std::max(1.0, static_cast<double>(K) / 100.0);
}

// Sets how the CUDA GEMMs pick kernels for one scope (the process default: CURVNET_GEMM, else lt_tuned).
struct GemmModeScope {
  explicit GemmModeScope(cuda::GemmMode m) : previous(cuda::gemm_mode()) { cuda::set_gemm_mode(m); }
  ~GemmModeScope() { cuda::set_gemm_mode(previous); }
  cuda::GemmMode previous;
};

const char* mode_name(cuda::GemmMode m) {
  return m == cuda::GemmMode::cublas ? "cublas" : m == cuda::GemmMode::lt_heuristic ? "lt_heuristic" : "lt_tuned";
}

// gemm_bias on both backends from the same random inputs; C starts as random garbage.
template <class T>
double gemm_bias_nmse(bool ta, bool tb, int64_t M, int64_t Nc, int64_t K, int64_t pad, uint32_t seed) {
  const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : Nc) + pad, ldc = Nc + pad;
  auto A = twin<T>((ta ? K : M) * lda, seed), B = twin<T>((tb ? Nc : K) * ldb, seed + 1);
  auto bias = twin<T>(Nc, seed + 2), C = twin<T>(M * ldc, seed + 3);
  cpu::gemm_bias<T>(ta, tb, M, Nc, K, A.hp(), lda, B.hp(), ldb, bias.hp(), C.hp(), ldc);
  cuda::gemm_bias<T>(ta, tb, M, Nc, K, A.dp(), lda, B.dp(), ldb, bias.dp(), C.dp(), ldc);
  return nmse(C.down(), C.h);
}

// gemm_bias_grad on both backends: {nmse of C, nmse of the bias gradient}.
template <class T>
std::pair<double, double> gemm_bias_grad_nmse(int64_t M, int64_t Nc, int64_t K, int64_t pad, uint32_t seed) {
  const int64_t lda = M + pad, ldb = Nc + pad, ldc = Nc + pad;
  auto A = twin<T>(std::max<int64_t>(1, K * lda), seed), B = twin<T>(std::max<int64_t>(1, K * ldb), seed + 1);
  auto C = twin<T>(std::max<int64_t>(1, M * ldc), seed + 2), db = twin<T>(M, seed + 3);
  cpu::gemm_bias_grad<T>(M, Nc, K, A.hp(), lda, B.hp(), ldb, C.hp(), ldc, db.hp());
  cuda::gemm_bias_grad<T>(M, Nc, K, A.dp(), lda, B.dp(), ldb, C.dp(), ldc, db.dp());
  return {nmse(C.down(), C.h), nmse(db.down(), db.h)};
}

template <class T>
class CudaOps : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CudaOps, Types);

// ---- ops.h -----------------------------------------------------------------------------

TYPED_TEST(CudaOps, Gemm) {
  CN_REQUIRE_GPU();
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
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t M = 11, Nc = 13, K = 17, count = 4;
  const int64_t sA = K * M + 5, sB = Nc * K + 7, sC = M * Nc + 2;  // ta, tb: A is K x M, B is Nc x K
  auto A = twin<T>(sA * count, 5), B = twin<T>(sB * count, 6), C = twin<T>(sC * count, 7);
  cpu::gemm_batched<T>(true, true, M, Nc, K, T(1.3), A.hp(), M, sA, B.hp(), K, sB, T(-0.4), C.hp(), Nc, sC, count);
  cuda::gemm_batched<T>(true, true, M, Nc, K, T(1.3), A.dp(), M, sA, B.dp(), K, sB, T(-0.4), C.dp(), Nc, sC, count);
  EXPECT_TWIN(C, Tol<T>::reduction);
}

// Linear's forward: y = x Wᵀ + b is (ta, tb) = (false, true); every transpose pair, odd
// sizes, leading dimensions wider than the rows, one row, K large.
TYPED_TEST(CudaOps, GemmBias) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  struct Shape {
    int64_t M, Nc, K;
  };
  uint32_t seed = 100;
  for (const Shape& s : {Shape{37, 29, 53}, Shape{1, 7, 5}, Shape{130, 96, 784}, Shape{64, 10, 4099}})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int64_t pad : {int64_t(0), int64_t(3)}) {
          EXPECT_LE(gemm_bias_nmse<T>(ta, tb, s.M, s.Nc, s.K, pad, seed), sum_tol<T>(s.K))
              << "M=" << s.M << " N=" << s.Nc << " K=" << s.K << " ta=" << ta << " tb=" << tb << " pad=" << pad;
          seed += 4;
        }
  // K = 0: C = the bias on every row.
  EXPECT_LE(gemm_bias_nmse<T>(false, true, 5, 6, 0, 1, 7), Tol<T>::elementwise);
}

// Linear's backward: dW = dyᵀ x (M = O, Nc = I, K = N) and db = Σ_n dy.
TYPED_TEST(CudaOps, GemmBiasGrad) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  struct Shape {
    int64_t M, Nc, K;
  };
  uint32_t seed = 300;
  for (const Shape& s :
       {Shape{29, 37, 53}, Shape{10, 1, 7}, Shape{96, 784, 256}, Shape{45, 33, 5000}, Shape{10, 130, 1024}})
    for (int64_t pad : {int64_t(0), int64_t(3)}) {
      const auto [c, db] = gemm_bias_grad_nmse<T>(s.M, s.Nc, s.K, pad, seed);
      const std::string what = "M=" + std::to_string(s.M) + " N=" + std::to_string(s.Nc) + " K=" + std::to_string(s.K) +
                               " pad=" + std::to_string(pad);
      EXPECT_LE(c, sum_tol<T>(s.K)) << what << " dW";
      EXPECT_LE(db, sum_tol<T>(s.K)) << what << " db";
      seed += 4;
    }
  // No inputs (Nc = 0): only the bias gradient. No rows (K = 0): both zero.
  EXPECT_LE(gemm_bias_grad_nmse<T>(5, 0, 9, 0, 11).second, Tol<T>::reduction);
  const auto [c0, db0] = gemm_bias_grad_nmse<T>(6, 4, 0, 1, 12);
  EXPECT_EQ(c0, 0.0);
  EXPECT_EQ(db0, 0.0);
}

// Every way of picking kernels gives the CPU's results, and a problem asked twice gives the
// same bits (the choice made on first use is kept).
TYPED_TEST(CudaOps, GemmModesAgreeWithTheCpu) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  for (cuda::GemmMode m : {cuda::GemmMode::cublas, cuda::GemmMode::lt_heuristic, cuda::GemmMode::lt_tuned}) {
    GemmModeScope scope(m);
    EXPECT_LE(gemm_bias_nmse<T>(false, true, 70, 50, 90, 0, 500), sum_tol<T>(90)) << mode_name(m);
    const auto [c, db] = gemm_bias_grad_nmse<T>(50, 90, 70, 0, 504);
    EXPECT_LE(c, sum_tol<T>(70)) << mode_name(m);
    EXPECT_LE(db, sum_tol<T>(70)) << mode_name(m);
    const int64_t M = 70, Nc = 90, K = 50;
    auto A = twin<T>(M * K, 508), B = twin<T>(K * Nc, 509), C = twin<T>(M * Nc, 510);
    cpu::gemm<T>(false, false, M, Nc, K, T(1), A.hp(), K, B.hp(), Nc, T(0), C.hp(), Nc);
    cuda::gemm<T>(false, false, M, Nc, K, T(1), A.dp(), K, B.dp(), Nc, T(0), C.dp(), Nc);
    const std::vector<T> first = C.down();
    EXPECT_LE(nmse(first, C.h), sum_tol<T>(K)) << mode_name(m);
    cuda::gemm<T>(false, false, M, Nc, K, T(1), A.dp(), K, B.dp(), Nc, T(0), C.dp(), Nc);
    EXPECT_EQ(C.down(), first) << mode_name(m);
  }
}

// Recording into a graph never times candidates: the replay runs the choice made eagerly
// (same bits), and a problem first seen inside a recording still matches the CPU.
TYPED_TEST(CudaOps, GemmsRecordedInAGraph) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t N = 33, I = 21, O = 17;  // shapes no other test uses: first seen here
  auto x = twin<T>(N * I, 600), W = twin<T>(O * I, 601), b = twin<T>(O, 602), dy = twin<T>(N * O, 603);
  auto y = twin<T>(N * O, 604), dW = twin<T>(O * I, 605), db = twin<T>(O, 606), dx = twin<T>(N * I, 607);
  auto linear = [&](Device d, T* yp, T* dWp, T* dbp, T* dxp, const T* xp, const T* Wp, const T* bp, const T* dyp) {
    CN_DISPATCH(d, gemm_bias<T>, false, true, N, O, I, xp, I, Wp, I, bp, yp, O);
    CN_DISPATCH(d, gemm_bias_grad<T>, O, I, N, dyp, O, xp, I, dWp, I, dbp);
    CN_DISPATCH(d, gemm<T>, false, false, N, I, O, T(1), dyp, O, Wp, I, T(0), dxp, I);
  };
  linear(Device::cpu, y.hp(), dW.hp(), db.hp(), dx.hp(), x.hp(), W.hp(), b.hp(), dy.hp());
  auto poison = [](Twin<T>& t) {
    const std::vector<T> nan(t.h.size(), static_cast<T>(std::nan("")));
    device_copy(Device::cuda, t.dp(), Device::cpu, nan.data(), nan.size() * sizeof(T));
  };

  {  // First seen inside the recording.
    cuda::Graph graph;
    graph.record([&] { linear(Device::cuda, y.dp(), dW.dp(), db.dp(), dx.dp(), x.dp(), W.dp(), b.dp(), dy.dp()); });
    ASSERT_TRUE(graph.replay());
    EXPECT_LE(nmse(y.down(), y.h), sum_tol<T>(I)) << "y";
    EXPECT_LE(nmse(dW.down(), dW.h), sum_tol<T>(N)) << "dW";
    EXPECT_LE(nmse(db.down(), db.h), sum_tol<T>(N)) << "db";
    EXPECT_LE(nmse(dx.down(), dx.h), sum_tol<T>(O)) << "dx";
  }
  {  // Eager first (timed), then recorded: the replay gives the eager bits.
    // New outputs, same problem keys: planned inside the recording above, timed now.
    auto y2 = twin<T>(N * O, 608), dW2 = twin<T>(O * I, 609), db2 = twin<T>(O, 610), dx2 = twin<T>(N * I, 611);
    linear(Device::cuda, y2.dp(), dW2.dp(), db2.dp(), dx2.dp(), x.dp(), W.dp(), b.dp(), dy.dp());
    const std::vector<T> ye = y2.down(), dWe = dW2.down(), dbe = db2.down(), dxe = dx2.down();
    for (Twin<T>* t : {&y2, &dW2, &db2, &dx2}) poison(*t);
    cuda::Graph graph;
    graph.record([&] { linear(Device::cuda, y2.dp(), dW2.dp(), db2.dp(), dx2.dp(), x.dp(), W.dp(), b.dp(), dy.dp()); });
    ASSERT_TRUE(graph.replay());
    EXPECT_EQ(y2.down(), ye);
    EXPECT_EQ(dW2.down(), dWe);
    EXPECT_EQ(db2.down(), dbe);
    EXPECT_EQ(dx2.down(), dxe);
  }
}

TYPED_TEST(CudaOps, AddRowVectorAndColumnSum) {
  CN_REQUIRE_GPU();
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
  // Tall matrices: rows cut into chunks summed in a second pass (a ragged last chunk).
  for (const auto& [Nt, Ot] : {std::pair<int64_t, int64_t>{1000, 45}, {1024, 1030}, {4099, 7}})
    for (bool acc : {false, true}) {
      auto x = twin<T>(Nt * Ot, 11), s = twin<T>(Ot, 12);
      cpu::column_sum<T>(x.hp(), Nt, Ot, s.hp(), acc);
      cuda::column_sum<T>(x.dp(), Nt, Ot, s.dp(), acc);
      EXPECT_LE(nmse(s.down(), s.h), sum_tol<T>(Nt)) << "N=" << Nt << " O=" << Ot << " accumulate=" << acc;
    }
}

TYPED_TEST(CudaOps, Activations) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t n = 5000;
  for (Act k :
       {Act::identity, Act::relu, Act::leaky_relu, Act::elu, Act::sigmoid, Act::tanh, Act::gelu, Act::softplus}) {
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
  CN_REQUIRE_GPU();
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
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t N = 50, O = 33;
  const double eps = 1e-5;
  auto x = twin<T>(N * O, 28), gamma = twin<T>(O, 29), beta = twin<T>(O, 30);
  auto rm = twin<T>(O, 31), rv = twin<T>(O, 32, 0.5, 2.0);
  auto y = twin<T>(N * O, 33), xhat = twin<T>(N * O, 34), inv_std = twin<T>(O, 35);
  cpu::bn_forward_eval<T>(x.hp(), gamma.hp(), beta.hp(), rm.hp(), rv.hp(), N, O, eps, y.hp(), xhat.hp(), inv_std.hp());
  cuda::bn_forward_eval<T>(x.dp(), gamma.dp(), beta.dp(), rm.dp(), rv.dp(), N, O, eps, y.dp(), xhat.dp(), inv_std.dp());
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
  CN_REQUIRE_GPU();
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
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t N = 300, C = 10;
  for (LossKind kind : {LossKind::cross_entropy, LossKind::mse, LossKind::bce_logits}) {
    auto z = twin<T>(N * C, 44, -4.0, 4.0), dz = twin<T>(N * C, 45), p = twin<T>(N * C, 46);
    std::vector<T> target_h = test::random_values<T>(N * C, 47, 0.0, 1.0);  // mse/bce targets in (0, 1)
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
  CN_REQUIRE_GPU();
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
  CN_REQUIRE_GPU();
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
  CN_REQUIRE_GPU();
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
  CN_REQUIRE_GPU();
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
  CN_REQUIRE_GPU();
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

// TF32 (opted in): the context's setting reaches the cuBLASLt compute type. Inputs rounded
// to 10-bit mantissas: ~5e-4 relative per product.
TEST(CudaOpsTf32, GemmsFollowTheContext) {
  CN_REQUIRE_GPU();
  // Plans are kept by the cuBLASLt modes only: the test picks one, whatever the default.
  struct Tf32Scope {
    cuda::GemmMode mode = cuda::gemm_mode();
    Tf32Scope() {
      cuda::context().set_allow_tf32(true);
      cuda::set_gemm_mode(cuda::GemmMode::lt_heuristic);
    }
    ~Tf32Scope() {
      cuda::context().set_allow_tf32(false);
      cuda::set_gemm_mode(mode);
    }
  } tf32;
  constexpr double kTol = 1e-5;
  EXPECT_LE(gemm_bias_nmse<float>(false, true, 64, 48, 256, 0, 700), kTol);
  const auto [c, db] = gemm_bias_grad_nmse<float>(48, 64, 256, 0, 704);
  EXPECT_LE(c, kTol);
  EXPECT_LE(db, kTol);
  bool seen = false;
  for (const cuda::GemmPlanInfo& p : cuda::gemm_plans()) seen = seen || p.tf32;
  EXPECT_TRUE(seen) << "no TF32 problem key recorded";
}

// Last: what served each problem key of this process (a fallback is correct but slower; a
// TF32 key records its own choice).
TEST(CudaOpsReport, GemmPlans) {
  CN_REQUIRE_GPU();
  for (const cuda::GemmPlanInfo& p : cuda::gemm_plans()) std::cout << "[gemm] " << cuda::describe(p) << "\n";
}

}  // namespace

#else  // !CURVNET_HAVE_CUDA

TEST(CudaOps, NotBuilt) { GTEST_SKIP() << "curvnet was built without the CUDA backend"; }

#endif

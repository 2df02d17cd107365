// CUDA twins of gemm and gemm_batched (kernels/ops.h) on cuBLAS. curvnet is row-major and
// cuBLAS column-major: a row-major X with leading dimension ld is the column-major Xᵀ with
// the same ld, so C = op(A) op(B) (row-major, M x Nc) is computed as the column-major
// Cᵀ = op(B)ᵀ op(A)ᵀ (Nc x M): operands swapped, each keeping its own transpose flag.
// Plain FP32/FP64 (no TF32 unless the context allows it). C is written with beta as BLAS.
#include <climits>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/ops.h"

namespace cn::cuda {

// --- kernels

// C = beta * C over an M x Nc row-major block (the K = 0 case: no product to add).
// beta = 0 writes zeros without reading C (BLAS semantics: NaN in C does not survive).
template <class T>
__global__ void scale_matrix_kernel(T* C, int64_t M, int64_t Nc, int64_t ldc, T beta) {
  CN_GRID_STRIDE(i, M * Nc) {
    T& c = C[(i / Nc) * ldc + i % Nc];
    c = beta == T(0) ? T(0) : beta * c;
  }
}

// --- launchers

namespace {

inline cublasOperation_t op(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

int to_int(int64_t v, const char* what) {
  CN_CHECK_MSG(v >= 0 && v <= INT_MAX, what << " = " << v << " does not fit cuBLAS's int");
  return static_cast<int>(v);
}

cublasStatus_t blas_gemm(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n, int k,
                         const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                         float* C, int ldc) {
  return cublasSgemm(h, oa, ob, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t blas_gemm(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n, int k,
                         const double* alpha, const double* A, int lda, const double* B, int ldb, const double* beta,
                         double* C, int ldc) {
  return cublasDgemm(h, oa, ob, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t blas_gemm_strided(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n, int k,
                                 const float* alpha, const float* A, int lda, long long sa, const float* B, int ldb,
                                 long long sb, const float* beta, float* C, int ldc, long long sc, int count) {
  return cublasSgemmStridedBatched(h, oa, ob, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count);
}
cublasStatus_t blas_gemm_strided(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n, int k,
                                 const double* alpha, const double* A, int lda, long long sa, const double* B,
                                 int ldb, long long sb, const double* beta, double* C, int ldc, long long sc,
                                 int count) {
  return cublasDgemmStridedBatched(h, oa, ob, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count);
}

template <class T>
void scale_matrix(T* C, int64_t M, int64_t Nc, int64_t ldc, T beta) {
  scale_matrix_kernel<<<grid_for(M * Nc), kBlock, 0, stream()>>>(C, M, Nc, ldc, beta);
  CN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || Nc == 0) return;
  if (Kd == 0) return scale_matrix(C, M, Nc, ldc, beta);
  CN_CUBLAS_CHECK(blas_gemm(context().cublas(), op(tb), op(ta), to_int(Nc, "Nc"), to_int(M, "M"), to_int(Kd, "K"),
                            &alpha, B, to_int(ldb, "ldb"), A, to_int(lda, "lda"), &beta, C, to_int(ldc, "ldc")));
}

template <class T>
void gemm_batched(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, T alpha, const T* A, int64_t lda,
                  int64_t strideA, const T* B, int64_t ldb, int64_t strideB, T beta, T* C, int64_t ldc,
                  int64_t strideC, int64_t count) {
  if (M == 0 || Nc == 0 || count == 0) return;
  if (Kd == 0) {
    for (int64_t k = 0; k < count; ++k) scale_matrix(C + k * strideC, M, Nc, ldc, beta);
    return;
  }
  CN_CUBLAS_CHECK(blas_gemm_strided(context().cublas(), op(tb), op(ta), to_int(Nc, "Nc"), to_int(M, "M"),
                                    to_int(Kd, "K"), &alpha, B, to_int(ldb, "ldb"), strideB, A, to_int(lda, "lda"),
                                    strideA, &beta, C, to_int(ldc, "ldc"), strideC, to_int(count, "count")));
}

#define CN_INSTANTIATE(T)                                                                                        \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*,  \
                        int64_t);                                                                                \
  template void gemm_batched<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, int64_t, const T*, \
                                int64_t, int64_t, T, T*, int64_t, int64_t, int64_t);
CN_INSTANTIATE(float)
CN_INSTANTIATE(double)
#undef CN_INSTANTIATE

}  // namespace cn::cuda

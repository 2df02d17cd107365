// Status checks for the CUDA runtime, cuBLAS and cuSOLVER: one generic checker per status
// type. A failure throws cn::Error "file:line: call failed: <the library's message>"; the
// _WARN variants print the same line and carry on (for destructors and noexcept paths).
// Plain C++: included by .cu and .cpp files alike.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

namespace cn::detail {
[[noreturn]] void fail_status(const char* file, int line, const char* call, const char* message);
void warn_status(const char* file, int line, const char* call, const char* message) noexcept;
}  // namespace cn::detail

namespace cn::cuda {
// cuSOLVER has no status-to-string function: our own name table.
const char* cusolver_status_name(cusolverStatus_t s) noexcept;
}  // namespace cn::cuda

#define CN_CHECK_STATUS(expr, ok, name_of)                                                             \
  do {                                                                                                 \
    const auto cn_status_ = (expr);                                                                    \
    if (cn_status_ != (ok)) ::cn::detail::fail_status(__FILE__, __LINE__, #expr, name_of(cn_status_)); \
  } while (0)
#define CN_WARN_STATUS(expr, ok, name_of)                                                              \
  do {                                                                                                 \
    const auto cn_status_ = (expr);                                                                    \
    if (cn_status_ != (ok)) ::cn::detail::warn_status(__FILE__, __LINE__, #expr, name_of(cn_status_)); \
  } while (0)

#define CN_CUDA_CHECK(e) CN_CHECK_STATUS(e, cudaSuccess, cudaGetErrorString)
#define CN_CUBLAS_CHECK(e) CN_CHECK_STATUS(e, CUBLAS_STATUS_SUCCESS, cublasGetStatusString)
#define CN_CUSOLVER_CHECK(e) CN_CHECK_STATUS(e, CUSOLVER_STATUS_SUCCESS, ::cn::cuda::cusolver_status_name)
#define CN_CUDA_WARN(e) CN_WARN_STATUS(e, cudaSuccess, cudaGetErrorString)
#define CN_CUBLAS_WARN(e) CN_WARN_STATUS(e, CUBLAS_STATUS_SUCCESS, cublasGetStatusString)
#define CN_CUSOLVER_WARN(e) CN_WARN_STATUS(e, CUSOLVER_STATUS_SUCCESS, ::cn::cuda::cusolver_status_name)

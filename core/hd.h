// CN_HD marks math shared by the CPU loops and the CUDA kernels (written once).
#pragma once
#ifdef __CUDACC__
#define CN_HD __host__ __device__ __forceinline__
#else
#define CN_HD inline
#endif

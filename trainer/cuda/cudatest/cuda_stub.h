// Declarations that let clang syntax-check the kernels without the CUDA headers
// (cudatest.CheckSyntax); NVRTC provides the real ones.
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __forceinline__ __attribute__((always_inline)) inline
#define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
#include <__clang_cuda_builtin_vars.h>
__device__ float expf(float);
__device__ float sqrtf(float);
__device__ float erff(float);
__device__ double sqrt(double);
__device__ double exp(double);
__device__ double log(double);
__device__ double sin(double);
__device__ double cos(double);
__device__ float fmaxf(float, float);
__device__ float __int_as_float(int);
__device__ void __syncthreads();
template <class T> __device__ T __shfl_xor_sync(unsigned, T, int);
template <class T> __device__ T __shfl_down_sync(unsigned, T, int);
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };

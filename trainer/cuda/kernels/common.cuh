// Shared helpers for the pipeline's kernels. This file is prepended to the other
// kernel sources, which are concatenated into one NVRTC program.

#define GRID_STRIDE(i, n) for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// block_sum returns the sum of v over the block to every thread. blockDim.x must be a
// multiple of 32. Safe to call several times in a row.
template <typename T>
__device__ T block_sum(T v) {
    __shared__ T sh[32];
    __shared__ T res;
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        int nw = blockDim.x >> 5;
        v = lane < nw ? sh[lane] : T(0);
        v = warp_sum(v);
        if (lane == 0) res = v;
    }
    __syncthreads();
    return res;
}

// block_max returns the maximum of v over the block to every thread.
__device__ float block_max(float v) {
    __shared__ float sh[32];
    __shared__ float res;
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        int nw = blockDim.x >> 5;
        v = lane < nw ? sh[lane] : __int_as_float(0xff800000);
        v = warp_max(v);
        if (lane == 0) res = v;
    }
    __syncthreads();
    return res;
}

// float32 <-> float16 / bfloat16 (bf16 != 0), round to nearest even (the PTX
// cvt.rn conversions: overflow gives inf, as PyTorch's .half() does).
__device__ __forceinline__ unsigned short half_from_f32(float x, int bf16) {
    unsigned short h;
    if (bf16) {
        asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(x));
    } else {
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    }
    return h;
}

__device__ __forceinline__ float half_to_f32(unsigned short h, int bf16) {
    if (bf16) return __int_as_float((int)(((unsigned int)h) << 16));
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

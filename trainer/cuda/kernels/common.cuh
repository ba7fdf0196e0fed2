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

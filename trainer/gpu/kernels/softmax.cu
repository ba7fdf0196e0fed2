// Row softmax for attention: one warp per row of length l (any l).

// p = softmax(s) row-wise, in place allowed. The scale is folded into the
// score GEMM.
extern "C" __global__ void softmax_rows(float* p, const float* s, long long rows, int l) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    long long nwarps = ((long long)gridDim.x * blockDim.x) >> 5;
    for (long long r = warp; r < rows; r += nwarps) {
        const float* sr = s + r * l;
        float* pr = p + r * l;
        float m = __int_as_float(0xff800000);
        for (int j = lane; j < l; j += 32) m = fmaxf(m, sr[j]);
        for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        float z = 0.0f;
        for (int j = lane; j < l; j += 32) z += expf(sr[j] - m);
        for (int o = 16; o > 0; o >>= 1) z += __shfl_xor_sync(0xffffffffu, z, o);
        float inv = 1.0f / z;
        for (int j = lane; j < l; j += 32) pr[j] = expf(sr[j] - m) * inv;
    }
}

// ds = scale * p * (dp - sum_j dp*p) row-wise; ds may alias dp.
extern "C" __global__ void softmax_rows_bwd(float* ds, const float* dp, const float* p, long long rows, int l, float scale) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    long long nwarps = ((long long)gridDim.x * blockDim.x) >> 5;
    for (long long r = warp; r < rows; r += nwarps) {
        const float* dpr = dp + r * l;
        const float* pr = p + r * l;
        float* out = ds + r * l;
        float acc = 0.0f;
        for (int j = lane; j < l; j += 32) acc += dpr[j] * pr[j];
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        for (int j = lane; j < l; j += 32) out[j] = scale * pr[j] * (dpr[j] - acc);
    }
}

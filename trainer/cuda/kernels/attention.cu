// Attention helpers: the row softmax of scaled scores and its backward.

// One block per row of length l: p = softmax(scale * s).
extern "C" __global__ void softmax_rows_fwd(float* pr, const float* s, int rows, int l, float scale) {
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* sr = s + (long long)r * l;
        float* out = pr + (long long)r * l;
        float m = __int_as_float(0xff800000);
        for (int j = threadIdx.x; j < l; j += blockDim.x) m = fmaxf(m, sr[j] * scale);
        m = block_max(m);
        float z = 0.0f;
        for (int j = threadIdx.x; j < l; j += blockDim.x) z += expf(sr[j] * scale - m);
        z = block_sum(z);
        float inv = 1.0f / z;
        for (int j = threadIdx.x; j < l; j += blockDim.x) out[j] = expf(sr[j] * scale - m) * inv;
    }
}

// ds = scale * p * (dp - sum_j dp*p), one block per row.
extern "C" __global__ void softmax_rows_bwd(float* ds, const float* dp, const float* pr, int rows, int l, float scale) {
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* dpr = dp + (long long)r * l;
        const float* ppr = pr + (long long)r * l;
        float* out = ds + (long long)r * l;
        float acc = 0.0f;
        for (int j = threadIdx.x; j < l; j += blockDim.x) acc += dpr[j] * ppr[j];
        acc = block_sum(acc);
        for (int j = threadIdx.x; j < l; j += blockDim.x) out[j] = scale * ppr[j] * (dpr[j] - acc);
    }
}

// Device AdamW (optimizer_state: device) and the squared norm it clips by.

// One launch over every trainable tensor. tab holds
// one entry per chunk of at most adamChunk floats of one tensor, five
// words each: the chunk's weights, gradients, first and second moments
// (device addresses) and its length | no_decay << 32. Block b takes chunk b.

// partial[b] = sum of squares of chunk b's gradients.
extern "C" __global__ void sumsq_chunks(double* partial, const unsigned long long* tab) {
    __shared__ double sh[32];
    const unsigned long long* e = tab + 5ull * blockIdx.x;
    const float* g = (const float*)e[1];
    int n = (int)(e[4] & 0xffffffffull);
    double acc = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        double v = g[i];
        acc += v * v;
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) sh[wid] = acc;
    __syncthreads();
    if (wid == 0) {
        int nw = blockDim.x >> 5;
        acc = lane < nw ? sh[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
        if (lane == 0) partial[blockIdx.x] = acc;
    }
}

// adamw_step on chunk b; decay applies unless the chunk's tensor is exempt.
extern "C" __global__ void adamw_chunks(const unsigned long long* tab, float gscale, float b1, float b2,
                                        float step_size, float sqrt_c2, float eps, float decay) {
    const unsigned long long* e = tab + 5ull * blockIdx.x;
    float* w = (float*)e[0];
    const float* g = (const float*)e[1];
    float* m = (float*)e[2];
    float* v = (float*)e[3];
    int n = (int)(e[4] & 0xffffffffull);
    float d = (e[4] >> 32) ? 1.0f : decay;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float gj = g[i] * gscale;
        float mj = b1 * m[i] + (1.0f - b1) * gj;
        float vj = b2 * v[i] + (1.0f - b2) * gj * gj;
        m[i] = mj;
        v[i] = vj;
        float denom = sqrtf(vj) / sqrt_c2 + eps;
        w[i] = w[i] * d - step_size * mj / denom;
    }
}

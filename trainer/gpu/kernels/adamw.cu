// Device AdamW (optimizer_state: device) and the squared norm it clips by.

// partial[block] = sum of squares of the block's grid-stride share of g.
extern "C" __global__ void sumsq_partial(double* partial, const float* g, int n) {
    __shared__ double sh[32];
    double acc = 0.0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
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

// One AdamW step, as trainer/optim.AdamW.Step: g is scaled by gscale (clipping),
// w = w*decay - step_size * m / (sqrt(v)/sqrt_c2 + eps).
extern "C" __global__ void adamw_step(float* w, const float* g, float* m, float* v, int n, float gscale,
                                      float b1, float b2, float step_size, float sqrt_c2, float eps, float decay) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float gj = g[i] * gscale;
        float mj = b1 * m[i] + (1.0f - b1) * gj;
        float vj = b2 * v[i] + (1.0f - b2) * gj * gj;
        m[i] = mj;
        v[i] = vj;
        float denom = sqrtf(vj) / sqrt_c2 + eps;
        w[i] = w[i] * decay - step_size * mj / denom;
    }
}

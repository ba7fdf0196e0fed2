// Reductions. All are deterministic: no atomics, fixed summation order per launch shape.

// out[r] = sum_j x[r*p + j]: one block per row.
extern "C" __global__ void sum_rows(float* out, const float* x, int rows, int p) {
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + (long long)r * p;
        double acc = 0.0;
        for (int j = threadIdx.x; j < p; j += blockDim.x) acc += xr[j];
        acc = block_sum(acc);
        if (threadIdx.x == 0) out[r] = (float)acc;
    }
}

// out[c] = (accumulate ? out[c] : 0) + sum_{n,j} x[(n*c_count + c)*p + j]: one block per channel.
extern "C" __global__ void sum_channels(float* out, const float* x, int n, int cc, int p, int accumulate) {
    for (int c = blockIdx.x; c < cc; c += gridDim.x) {
        double acc = 0.0;
        int total = n * p;
        for (int i = threadIdx.x; i < total; i += blockDim.x) {
            int s = i / p, j = i % p;
            acc += x[((long long)s * cc + c) * p + j];
        }
        acc = block_sum(acc);
        if (threadIdx.x == 0) out[c] = (accumulate ? out[c] : 0.0f) + (float)acc;
    }
}

// out[i] = (accumulate ? out[i] : 0) + sum_b x[b*m + i]: sums a batch of partial results.
extern "C" __global__ void sum_batches(float* out, const float* x, int b, int m, int accumulate) {
    GRID_STRIDE(i, m) {
        float acc = 0.0f;
        for (int k = 0; k < b; k++) acc += x[(long long)k * m + i];
        out[i] = accumulate ? out[i] + acc : acc;
    }
}

// partial[block] = sum of the block's grid-stride share of x.
extern "C" __global__ void sum_partial(double* partial, const float* x, int n) {
    double acc = 0.0;
    GRID_STRIDE(i, n) acc += x[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// out[0] = scale * sum(partial[0..np)) in one block.
extern "C" __global__ void finish_sum(float* out, const double* partial, int np, double scale) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < np; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[0] = (float)(acc * scale);
}

// Squared error over frames t >= skip of a (B, T, E) clip batch, per block.
extern "C" __global__ void frame_mse_partial(double* partial, const float* pred, const float* target,
                                             int b, int t, int e, int skip) {
    int n = b * t * e;
    double acc = 0.0;
    GRID_STRIDE(i, n) {
        int f = (i / e) % t;
        if (f >= skip) {
            double d = (double)pred[i] - (double)target[i];
            acc += d * d;
        }
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// dpred = k*(pred-target) on counted frames, 0 elsewhere.
extern "C" __global__ void frame_mse_bwd(float* dpred, const float* pred, const float* target, float k,
                                         int b, int t, int e, int skip) {
    GRID_STRIDE(i, b * t * e) {
        int f = (i / e) % t;
        dpred[i] = f >= skip ? k * (pred[i] - target[i]) : 0.0f;
    }
}

// Weight layouts and helpers of the direct temporal convolution (tconv.go).

// out (K, 3, C) from w (K, C, 3): out[k][j][c] = w[k][c][j].
extern "C" __global__ void tconv_wfwd(float* out, const float* w, int k, int c) {
    int n = k * 3 * c;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        int kk = i / (3 * c), r = i % (3 * c);
        int j = r / c, cc = r % c;
        out[i] = w[(kk * c + cc) * 3 + j];
    }
}

// out (C, 3, K) from w (K, C, 3) with the taps reversed: out[c][j'][k] = w[k][c][2-j'].
extern "C" __global__ void tconv_wdata(float* out, const float* w, int k, int c) {
    int n = c * 3 * k;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        int cc = i / (3 * k), r = i % (3 * k);
        int jp = r / k, kk = r % k;
        out[i] = w[(kk * c + cc) * 3 + 2 - jp];
    }
}

// dw (K, C, 3) from dwp (K, 3, C).
extern "C" __global__ void tconv_wgrad(float* dw, const float* dwp, int k, int c) {
    int n = k * c * 3;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        int j = i % 3, cc = (i / 3) % c, kk = i / (3 * c);
        dw[i] = dwp[kk * 3 * c + j * c + cc];
    }
}

// Zero a (rows x cols) block with row stride ld in each of batch matrices bstride apart.
extern "C" __global__ void zero_block(float* a, int rows, int cols, int ld, int batch, long long bstride) {
    long long n = (long long)batch * rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        int col = (int)(i % cols);
        long long rr = i / cols;
        int row = (int)(rr % rows);
        long long b = rr / rows;
        a[b * bstride + (long long)row * ld + col] = 0.0f;
    }
}

// y[n][c][p] += bias[c].
extern "C" __global__ void bias_ncp(float* y, const float* bias, long long n, int c, int p) {
    long long total = n * c * p;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        y[i] += bias[(i / p) % c];
    }
}

// y = 1 (n values).
extern "C" __global__ void fill_ones(float* y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) y[i] = 1.0f;
}

// y[n][c][p] += bias[c] + e[n][c] (a temporal conv's bias and the ResBlock's
// timestep-embedding add in one pass).
extern "C" __global__ void bias_emb_ncp(float* y, const float* bias, const float* e, long long n, int c, int p) {
    long long total = n * c * p;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        long long nc = i / p;
        y[i] += bias[nc % c] + e[nc];
    }
}

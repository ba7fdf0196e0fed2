// GroupNorm followed by SiLU, fused (gnsilu.go). Layout (N, C, P), groups of C/G
// channels contiguous per sample; statistics in double, as trainer/nn.

__device__ double block_sum_d(double v) {
    __shared__ double sh[32];
    __shared__ double res;
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        int nw = blockDim.x >> 5;
        v = lane < nw ? sh[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) res = v;
    }
    __syncthreads();
    return res;
}

// One block per (n, g): mean and 1/sqrt(var + eps), two passes in double.
extern "C" __global__ void gs_stats(float* mean, float* rstd, const float* x, int n, int c, int p, int g, float eps) {
    int cg = c / g;
    long long gl = (long long)cg * p;
    for (int ng = blockIdx.x; ng < n * g; ng += gridDim.x) {
        const float* xg = x + (long long)ng * gl;
        double s = 0.0;
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) s += xg[i];
        double m = block_sum_d(s) / (double)gl;
        double q = 0.0;
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) {
            double d = (double)xg[i] - m;
            q += d * d;
        }
        double var = block_sum_d(q) / (double)gl;
        if (threadIdx.x == 0) {
            mean[ng] = (float)m;
            rstd[ng] = (float)(1.0 / sqrt(var + (double)eps));
        }
    }
}

__device__ __forceinline__ float gs_h(float xv, float m, float r, float gm, float bt) {
    float a = r * gm;
    float b = bt - m * a;
    return xv * a + b;
}

// y = silu(groupnorm(x)).
extern "C" __global__ void gs_fwd(float* y, const float* x, const float* gamma, const float* beta,
                                  const float* mean, const float* rstd, int n, int c, int p, int g) {
    int cg = c / g;
    long long total = (long long)n * c * p;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        int ch = (int)((i / p) % c);
        int s = (int)(i / ((long long)c * p));
        int ng = s * g + ch / cg;
        float h = gs_h(x[i], mean[ng], rstd[ng], gamma[ch], beta[ch]);
        y[i] = h / (1.0f + expf(-h));
    }
}

__device__ __forceinline__ float gs_dh(float dyv, float h) {
    float sg = 1.0f / (1.0f + expf(-h));
    return dyv * sg * (1.0f + h * (1.0f - sg));
}

// One block per (n, g): dx from dy = d loss / d silu(groupnorm(x)).
extern "C" __global__ void gs_bwd_data(float* dx, const float* dy, const float* x, const float* gamma, const float* beta,
                                       const float* mean, const float* rstd, int n, int c, int p, int g) {
    int cg = c / g;
    long long gl = (long long)cg * p;
    for (int ng = blockIdx.x; ng < n * g; ng += gridDim.x) {
        long long off = (long long)ng * gl;
        int c0 = (ng % g) * cg;
        float mf = mean[ng], rf = rstd[ng];
        double m = mf, r = rf;
        double sg = 0.0, sgx = 0.0;
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) {
            int ch = c0 + (int)(i / p);
            float xv = x[off + i];
            float dh = gs_dh(dy[off + i], gs_h(xv, mf, rf, gamma[ch], beta[ch]));
            double gv = (double)dh * (double)gamma[ch];
            sg += gv;
            sgx += gv * ((double)xv - m) * r;
        }
        double mg = block_sum_d(sg) / (double)gl;
        double mgx = block_sum_d(sgx) / (double)gl;
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) {
            int ch = c0 + (int)(i / p);
            float xv = x[off + i];
            float dh = gs_dh(dy[off + i], gs_h(xv, mf, rf, gamma[ch], beta[ch]));
            double xhat = ((double)xv - m) * r;
            dx[off + i] = (float)(r * ((double)dh * (double)gamma[ch] - mg - xhat * mgx));
        }
    }
}

// One block per channel: dgamma = sum dh*xhat, dbeta = sum dh (either may be null).
extern "C" __global__ void gs_bwd_params(float* dgamma, float* dbeta, const float* dy, const float* x, const float* gamma,
                                         const float* beta, const float* mean, const float* rstd, int n, int c, int p, int g) {
    int cg = c / g;
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double a = 0.0, b = 0.0;
        long long total = (long long)n * p;
        for (long long i = threadIdx.x; i < total; i += blockDim.x) {
            int s = (int)(i / p);
            long long idx = ((long long)s * c + ch) * p + (i % p);
            int ng = s * g + ch / cg;
            float xv = x[idx];
            float dh = gs_dh(dy[idx], gs_h(xv, mean[ng], rstd[ng], gamma[ch], beta[ch]));
            a += (double)dh * ((double)xv - (double)mean[ng]) * (double)rstd[ng];
            b += (double)dh;
        }
        a = block_sum_d(a);
        b = block_sum_d(b);
        if (threadIdx.x == 0) {
            if (dgamma) dgamma[ch] = (float)a;
            if (dbeta) dbeta[ch] = (float)b;
        }
    }
}

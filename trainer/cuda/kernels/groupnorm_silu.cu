// GroupNorm followed by SiLU, fused (ops_groupnorm_silu.go): the normalised tensor h is
// never stored; the backward kernels recompute it from x and the statistics of gn_stats.
// Layout (N, C, P), groups of C/G channels contiguous per sample; sums in double.

__device__ __forceinline__ float gn_silu_h(float xv, float m, float r, float gm, float bt) {
    float a = r * gm;
    float b = bt - m * a;
    return xv * a + b;
}

// y = silu(groupnorm(x)).
extern "C" __global__ void gn_silu_fwd(float* y, const float* x, const float* gamma, const float* beta,
                                  const float* mean, const float* rstd, int n, int c, int p, int g) {
    int cg = c / g;
    long long total = (long long)n * c * p;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        int ch = (int)((i / p) % c);
        int s = (int)(i / ((long long)c * p));
        int ng = s * g + ch / cg;
        float h = gn_silu_h(x[i], mean[ng], rstd[ng], gamma[ch], beta[ch]);
        y[i] = h / (1.0f + expf(-h));
    }
}

__device__ __forceinline__ float gn_silu_dh(float dyv, float h) {
    float sg = 1.0f / (1.0f + expf(-h));
    return dyv * sg * (1.0f + h * (1.0f - sg));
}

// One block per (n, g): dx from dy = d loss / d silu(groupnorm(x)).
extern "C" __global__ void gn_silu_bwd_data(float* dx, const float* dy, const float* x, const float* gamma, const float* beta,
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
            float dh = gn_silu_dh(dy[off + i], gn_silu_h(xv, mf, rf, gamma[ch], beta[ch]));
            double gv = (double)dh * (double)gamma[ch];
            sg += gv;
            sgx += gv * ((double)xv - m) * r;
        }
        double mg = block_sum(sg) / (double)gl;
        double mgx = block_sum(sgx) / (double)gl;
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) {
            int ch = c0 + (int)(i / p);
            float xv = x[off + i];
            float dh = gn_silu_dh(dy[off + i], gn_silu_h(xv, mf, rf, gamma[ch], beta[ch]));
            double xhat = ((double)xv - m) * r;
            dx[off + i] = (float)(r * ((double)dh * (double)gamma[ch] - mg - xhat * mgx));
        }
    }
}

// One block per channel: dgamma = sum dh*xhat, dbeta = sum dh (either may be null).
extern "C" __global__ void gn_silu_bwd_params(float* dgamma, float* dbeta, const float* dy, const float* x, const float* gamma,
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
            float dh = gn_silu_dh(dy[idx], gn_silu_h(xv, mean[ng], rstd[ng], gamma[ch], beta[ch]));
            a += (double)dh * ((double)xv - (double)mean[ng]) * (double)rstd[ng];
            b += (double)dh;
        }
        a = block_sum(a);
        b = block_sum(b);
        if (threadIdx.x == 0) {
            if (dgamma) dgamma[ch] = (float)a;
            if (dbeta) dbeta[ch] = (float)b;
        }
    }
}

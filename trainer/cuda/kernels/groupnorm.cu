// Group normalisation of (N, C, P) over G groups, as nn.GroupNorm*: statistics in double.

// One block per (n, g): mean and 1/sqrt(var+eps), two passes over the group.
extern "C" __global__ void gn_stats(float* mean, float* rstd, const float* x, int n, int c, int p, int g, float eps) {
    int cg = c / g;
    long long gl = (long long)cg * p;
    for (int ng = blockIdx.x; ng < n * g; ng += gridDim.x) {
        const float* xg = x + (long long)ng * gl;  // groups are contiguous in NCP
        double s = 0.0;
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) s += xg[i];
        double m = block_sum(s) / (double)gl;
        double q = 0.0;
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) {
            double d = (double)xg[i] - m;
            q += d * d;
        }
        double var = block_sum(q) / (double)gl;
        if (threadIdx.x == 0) {
            mean[ng] = (float)m;
            rstd[ng] = (float)(1.0 / sqrt(var + (double)eps));
        }
    }
}

extern "C" __global__ void gn_fwd(float* y, const float* x, const float* gamma, const float* beta,
                                  const float* mean, const float* rstd, int n, int c, int p, int g) {
    int cg = c / g;
    GRID_STRIDE(i, n * c * p) {
        int ch = (i / p) % c, s = i / (c * p);
        int ng = s * g + ch / cg;
        float a = rstd[ng] * gamma[ch];
        y[i] = (x[i] - mean[ng]) * a + beta[ch];
    }
}

// One block per (n, g): dx = rstd*(dy*gamma - mean(dy*gamma) - xhat*mean(dy*gamma*xhat)).
extern "C" __global__ void gn_bwd_data(float* dx, const float* dy, const float* x, const float* gamma,
                                       const float* mean, const float* rstd, int n, int c, int p, int g) {
    int cg = c / g;
    long long gl = (long long)cg * p;
    for (int ng = blockIdx.x; ng < n * g; ng += gridDim.x) {
        long long off = (long long)ng * gl;
        int c0 = (ng % g) * cg;
        double m = mean[ng], r = rstd[ng];
        double sg = 0.0, sgx = 0.0;
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) {
            double gv = (double)dy[off + i] * (double)gamma[c0 + i / p];
            sg += gv;
            sgx += gv * ((double)x[off + i] - m) * r;
        }
        double mg = block_sum(sg) / (double)gl;
        double mgx = block_sum(sgx) / (double)gl;
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) {
            double xhat = ((double)x[off + i] - m) * r;
            double gv = (double)dy[off + i] * (double)gamma[c0 + i / p];
            dx[off + i] = (float)(r * (gv - mg - xhat * mgx));
        }
    }
}

// One block per channel: dgamma[c] = sum dy*xhat, dbeta[c] = sum dy (either may be null).
extern "C" __global__ void gn_bwd_params(float* dgamma, float* dbeta, const float* dy, const float* x,
                                         const float* mean, const float* rstd, int n, int c, int p, int g) {
    int cg = c / g;
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double a = 0.0, b = 0.0;
        int total = n * p;
        for (int i = threadIdx.x; i < total; i += blockDim.x) {
            int s = i / p, j = i % p;
            long long idx = ((long long)s * c + ch) * p + j;
            int ng = s * g + ch / cg;
            double d = dy[idx];
            a += d * ((double)x[idx] - (double)mean[ng]) * (double)rstd[ng];
            b += d;
        }
        a = block_sum(a);
        b = block_sum(b);
        if (threadIdx.x == 0) {
            if (dgamma) dgamma[ch] = (float)a;
            if (dbeta) dbeta[ch] = (float)b;
        }
    }
}

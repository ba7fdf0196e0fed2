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

// Statistics and output in one pass per (n, g) block, for when there are enough groups
// to fill the GPU; the same arithmetic as gn_stats followed by gn_fwd.
extern "C" __global__ void gn_fwd_fused(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                                        const float* beta, int n, int c, int p, int g, float eps) {
    int cg = c / g;
    long long gl = (long long)cg * p;
    for (int ng = blockIdx.x; ng < n * g; ng += gridDim.x) {
        const float* xg = x + (long long)ng * gl;
        float* yg = y + (long long)ng * gl;
        int c0 = (ng % g) * cg;
        double s = 0.0;
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) s += xg[i];
        double md = block_sum(s) / (double)gl;
        double q = 0.0;
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) {
            double d = (double)xg[i] - md;
            q += d * d;
        }
        double var = block_sum(q) / (double)gl;
        float m = (float)md, r = (float)(1.0 / sqrt(var + (double)eps));
        if (threadIdx.x == 0) {
            mean[ng] = m;
            rstd[ng] = r;
        }
        for (long long i = threadIdx.x; i < gl; i += blockDim.x) {
            int ch = c0 + (int)(i / p);
            float a = r * gamma[ch];
            yg[i] = (xg[i] - m) * a + beta[ch];
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

// Backward in three coalesced passes. First, one block per (n, c):
// sxhat[n,c] = sum_p dy*xhat, sdy[n,c] = sum_p dy.
extern "C" __global__ void gn_bwd_reduce(double* sxhat, double* sdy, const float* dy, const float* x,
                                         const float* mean, const float* rstd, int n, int c, int p, int g) {
    int cg = c / g;
    for (int nc = blockIdx.x; nc < n * c; nc += gridDim.x) {
        int ng = (nc / c) * g + (nc % c) / cg;
        float m = mean[ng], r = rstd[ng];
        const float* xs = x + (long long)nc * p;
        const float* ds = dy + (long long)nc * p;
        double a = 0.0, b = 0.0;
        for (int j = threadIdx.x; j < p; j += blockDim.x) {
            float d = ds[j];
            a += (double)(d * ((xs[j] - m) * r));
            b += (double)d;
        }
        a = block_sum(a);
        b = block_sum(b);
        if (threadIdx.x == 0) {
            sxhat[nc] = a;
            sdy[nc] = b;
        }
    }
}

// Second, per channel: dgamma[c] = sum_n sxhat[n,c], dbeta[c] = sum_n sdy[n,c] (either
// may be null); and per (n, g) the two means of the data gradient:
// mg = sum_{c in g} gamma_c*sdy / (cg*p), mgx = sum_{c in g} gamma_c*sxhat / (cg*p).
extern "C" __global__ void gn_bwd_finish(float* dgamma, float* dbeta, float* mg, float* mgx,
                                         const double* sxhat, const double* sdy, const float* gamma,
                                         int n, int c, int p, int g) {
    int cg = c / g;
    GRID_STRIDE(i, c + n * g) {
        if (i < c) {
            double a = 0.0, b = 0.0;
            for (int s = 0; s < n; s++) {
                a += sxhat[s * c + i];
                b += sdy[s * c + i];
            }
            if (dgamma) dgamma[i] = (float)a;
            if (dbeta) dbeta[i] = (float)b;
        } else if (mg) {
            int ng = i - c, s = ng / g, c0 = (ng % g) * cg;
            double a = 0.0, b = 0.0;
            for (int k = 0; k < cg; k++) {
                double gm = gamma[c0 + k];
                a += gm * sdy[s * c + c0 + k];
                b += gm * sxhat[s * c + c0 + k];
            }
            double gl = (double)cg * p;
            mg[ng] = (float)(a / gl);
            mgx[ng] = (float)(b / gl);
        }
    }
}

// Third, element-wise: dx = rstd*(dy*gamma - mg - xhat*mgx).
extern "C" __global__ void gn_bwd_dx(float* dx, const float* dy, const float* x, const float* gamma,
                                     const float* mean, const float* rstd, const float* mg, const float* mgx,
                                     int n, int c, int p, int g) {
    int cg = c / g;
    GRID_STRIDE(i, n * c * p) {
        int ch = (i / p) % c, s = i / (c * p);
        int ng = s * g + ch / cg;
        float r = rstd[ng];
        float xhat = (x[i] - mean[ng]) * r;
        dx[i] = r * (dy[i] * gamma[ch] - mg[ng] - xhat * mgx[ng]);
    }
}

// Split statistics, for groups too few to fill the GPU one block each: block b
// takes slice b % splits of group b / splits and writes its count, mean and
// centred sum of squares (two passes over the slice, the second from cache) to
// part[3b..3b+2]; gn_stats_merge combines the slices (Chan et al.'s pairwise
// update), in double as gn_stats.
extern "C" __global__ void gn_stats_part(double* part, const float* x, int n, int c, int p, int g, int splits) {
    long long gl = (long long)(c / g) * p;
    long long chunk = (gl + splits - 1) / splits;
    long long blocks = (long long)n * g * splits;
    for (long long b = blockIdx.x; b < blocks; b += gridDim.x) {
        long long ng = b / splits;
        long long i0 = (b % splits) * chunk;
        long long i1 = i0 + chunk < gl ? i0 + chunk : gl;
        long long cnt = i1 > i0 ? i1 - i0 : 0;
        const float* xg = x + ng * gl;
        double s = 0.0;
        for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) s += xg[i];
        s = block_sum(s);
        double m = cnt > 0 ? s / (double)cnt : 0.0;
        double q = 0.0;
        for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
            double d = (double)xg[i] - m;
            q += d * d;
        }
        q = block_sum(q);
        if (threadIdx.x == 0) {
            part[3 * b] = (double)cnt;
            part[3 * b + 1] = m;
            part[3 * b + 2] = q;
        }
    }
}

extern "C" __global__ void gn_stats_merge(float* mean, float* rstd, const double* part, int groups, int splits, float eps) {
    GRID_STRIDE(ng, groups) {
        double cnt = 0.0, m = 0.0, m2 = 0.0;
        for (int k = 0; k < splits; k++) {
            const double* r = part + 3 * ((long long)ng * splits + k);
            double nb = r[0];
            if (nb == 0.0) continue;
            double delta = r[1] - m, tot = cnt + nb;
            m += delta * nb / tot;
            m2 += r[2] + delta * delta * cnt * nb / tot;
            cnt = tot;
        }
        mean[ng] = (float)m;
        rstd[ng] = (float)(1.0 / sqrt(m2 / cnt + (double)eps));
    }
}

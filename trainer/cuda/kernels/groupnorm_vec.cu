// Group norm of (N, C, P) with P % 4 == 0 and 16-byte aligned tensors, one
// block per (n, g) and float4 accesses, no 64-bit division per element
// (ops_groupnorm_vec.go). The statistics take one pass, sums in double
// about the group's first value (the variance from the shifted sums, as
// gnh_stats_part); the output and the data gradient are the same float
// expressions as gn_fwd and gn_bwd_dx. Optionally fused with the SiLU
// that follows the norm (the normalised tensor is recomputed, never
// stored) and accumulating into the data gradient.

__device__ __forceinline__ float gnv_silu(float h) { return h / (1.0f + expf(-h)); }

__device__ __forceinline__ float gnv_silu_grad(float d, float v) {
    float s = 1.0f / (1.0f + expf(-v));
    return d * s * (1.0f + v * (1.0f - s));
}

// y = groupnorm(x), or silu of it when silu != 0; mean and rstd receive the
// statistics. y may alias x.
extern "C" __global__ void gnv_fwd(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                                   const float* beta, int n, int c, int p, int g, float eps, int silu) {
    int cg = c / g, p4 = p >> 2, gl4 = cg * p4;
    double cnt = (double)cg * p;
    for (int ng = blockIdx.x; ng < n * g; ng += gridDim.x) {
        long long off = (long long)ng * cg * p;
        const float4* xg = (const float4*)(x + off);
        float4* yg = (float4*)(y + off);
        int c0 = (ng % g) * cg;
        float piv = x[off];
        double s = 0.0, q = 0.0;
        for (int k = threadIdx.x; k < gl4; k += blockDim.x) {
            float4 f = xg[k];
            double a = (double)f.x - piv, b = (double)f.y - piv, cc = (double)f.z - piv, dd = (double)f.w - piv;
            s += (a + b) + (cc + dd);
            q += (a * a + b * b) + (cc * cc + dd * dd);
        }
        s = block_sum(s);
        q = block_sum(q);
        double md = s / cnt;
        double var = q / cnt - md * md;
        if (var < 0.0) var = 0.0;
        float m = (float)((double)piv + md), r = (float)(1.0 / sqrt(var + (double)eps));
        if (threadIdx.x == 0) {
            mean[ng] = m;
            rstd[ng] = r;
        }
        for (int k = threadIdx.x; k < gl4; k += blockDim.x) {
            int ch = c0 + k / p4;
            float a = r * gamma[ch], bt = beta[ch];
            float4 f = xg[k], o;
            o.x = (f.x - m) * a + bt;
            o.y = (f.y - m) * a + bt;
            o.z = (f.z - m) * a + bt;
            o.w = (f.w - m) * a + bt;
            if (silu) {
                o.x = gnv_silu(o.x);
                o.y = gnv_silu(o.y);
                o.z = gnv_silu(o.z);
                o.w = gnv_silu(o.w);
            }
            yg[k] = o;
        }
    }
}

// The gradient reaching the norm's output from dy: dy itself, or through
// the SiLU at h = groupnorm(x).
__device__ __forceinline__ float4 gnv_dh(float4 d, float4 f, float m, float a, float bt, int silu) {
    if (silu) {
        d.x = gnv_silu_grad(d.x, (f.x - m) * a + bt);
        d.y = gnv_silu_grad(d.y, (f.y - m) * a + bt);
        d.z = gnv_silu_grad(d.z, (f.z - m) * a + bt);
        d.w = gnv_silu_grad(d.w, (f.w - m) * a + bt);
    }
    return d;
}

// dx = rstd*(dh*gamma - mg - xhat*mgx) with mg = sum gamma*dh / (cg*p), mgx =
// sum gamma*dh*xhat / (cg*p) over the group (dx += that when acc != 0): one
// pass for the sums, one for dx. mean and rstd are the forward statistics;
// null (silu == 0 only) takes them from x in the same first pass.
extern "C" __global__ void gnv_bwd(float* dx, const float* dy, const float* x, const float* gamma, const float* beta,
                                   const float* mean, const float* rstd, int n, int c, int p, int g, float eps,
                                   int silu, int acc) {
    int cg = c / g, p4 = p >> 2, gl4 = cg * p4;
    double cnt = (double)cg * p;
    for (int ng = blockIdx.x; ng < n * g; ng += gridDim.x) {
        long long off = (long long)ng * cg * p;
        const float4* xg = (const float4*)(x + off);
        const float4* dg = (const float4*)(dy + off);
        float4* og = (float4*)(dx + off);
        int c0 = (ng % g) * cg;
        float m, r;
        double sg, sgx;  // sum gamma*dh, sum gamma*dh*(x - m)
        if (mean) {
            m = mean[ng];
            r = rstd[ng];
            double a1 = 0.0, a2 = 0.0;
            for (int k = threadIdx.x; k < gl4; k += blockDim.x) {
                int ch = c0 + k / p4;
                float gm = gamma[ch];
                float4 f = xg[k];
                float4 d = gnv_dh(dg[k], f, m, r * gm, silu ? beta[ch] : 0.0f, silu);
                double e0 = (double)d.x * gm, e1 = (double)d.y * gm, e2 = (double)d.z * gm, e3 = (double)d.w * gm;
                a1 += (e0 + e1) + (e2 + e3);
                a2 += (e0 * ((double)f.x - m) + e1 * ((double)f.y - m)) + (e2 * ((double)f.z - m) + e3 * ((double)f.w - m));
            }
            sg = block_sum(a1);
            sgx = block_sum(a2);
        } else {
            float piv = x[off];
            double s1 = 0.0, s2 = 0.0, a1 = 0.0, a2 = 0.0;
            for (int k = threadIdx.x; k < gl4; k += blockDim.x) {
                float gm = gamma[c0 + k / p4];
                float4 f = xg[k], d = dg[k];
                double u0 = (double)f.x - piv, u1 = (double)f.y - piv, u2 = (double)f.z - piv, u3 = (double)f.w - piv;
                double e0 = (double)d.x * gm, e1 = (double)d.y * gm, e2 = (double)d.z * gm, e3 = (double)d.w * gm;
                s1 += (u0 + u1) + (u2 + u3);
                s2 += (u0 * u0 + u1 * u1) + (u2 * u2 + u3 * u3);
                a1 += (e0 + e1) + (e2 + e3);
                a2 += (e0 * u0 + e1 * u1) + (e2 * u2 + e3 * u3);
            }
            s1 = block_sum(s1);
            s2 = block_sum(s2);
            sg = block_sum(a1);
            double su = block_sum(a2);  // sum gamma*dy*(x - piv)
            double md = s1 / cnt;
            double var = s2 / cnt - md * md;
            if (var < 0.0) var = 0.0;
            m = (float)((double)piv + md);
            r = (float)(1.0 / sqrt(var + (double)eps));
            sgx = su - ((double)m - (double)piv) * sg;
        }
        float mg = (float)(sg / cnt), mgx = (float)((double)r * sgx / cnt);
        for (int k = threadIdx.x; k < gl4; k += blockDim.x) {
            int ch = c0 + k / p4;
            float gm = gamma[ch];
            float4 f = xg[k];
            float4 d = gnv_dh(dg[k], f, m, r * gm, silu ? beta[ch] : 0.0f, silu);
            float4 o;
            o.x = r * (d.x * gm - mg - ((f.x - m) * r) * mgx);
            o.y = r * (d.y * gm - mg - ((f.y - m) * r) * mgx);
            o.z = r * (d.z * gm - mg - ((f.z - m) * r) * mgx);
            o.w = r * (d.w * gm - mg - ((f.w - m) * r) * mgx);
            if (acc) {
                float4 u = og[k];
                o.x += u.x;
                o.y += u.y;
                o.z += u.z;
                o.w += u.w;
            }
            og[k] = o;
        }
    }
}

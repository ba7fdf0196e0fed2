// Vectorised forms of sd.cu's layer norm and GEGLU (sd_vec.go): the same
// float expressions on float4 accesses. The layer norm takes one warp per
// row, the row held in registers (d % 4 == 0, d <= 4*32*SDV_LN_MAX), so x
// and dy are read once and no block-wide synchronisation is needed; sd.cu's
// kernels take every other shape.

#define SDV_LN_MAX 10

__device__ __forceinline__ float sdv_warp_allsum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float sdv_sum4(float4 v) { return (v.x + v.y) + (v.z + v.w); }

// As sd_layer_norm; rows < 2^31.
extern "C" __global__ void sd_layer_norm_w(float* y, float* mean_out, float* rstd_out, const float* x, const float* gamma,
                                           const float* beta, int rows, int d, float eps) {
    int lane = threadIdx.x & 31, warps = blockDim.x >> 5, d4 = d >> 2;
    const float4* g4 = (const float4*)gamma;
    const float4* b4 = (const float4*)beta;
    for (int r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += gridDim.x * warps) {
        const float4* xr = (const float4*)(x + (long long)r * d);
        float4 v[SDV_LN_MAX];
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < SDV_LN_MAX; k++) {
            int j = lane + 32 * k;
            if (j < d4) {
                v[k] = xr[j];
                s += sdv_sum4(v[k]);
            }
        }
        float mean = sdv_warp_allsum(s) / d;
        float q = 0.0f;
#pragma unroll
        for (int k = 0; k < SDV_LN_MAX; k++) {
            int j = lane + 32 * k;
            if (j < d4) {
                float a = v[k].x - mean, b = v[k].y - mean, c = v[k].z - mean, e = v[k].w - mean;
                q += (a * a + b * b) + (c * c + e * e);
            }
        }
        float rstd = 1.0f / sqrtf(sdv_warp_allsum(q) / d + eps);
        float4* yr = (float4*)(y + (long long)r * d);
#pragma unroll
        for (int k = 0; k < SDV_LN_MAX; k++) {
            int j = lane + 32 * k;
            if (j < d4) {
                float4 g = g4[j], b = b4[j], o;
                o.x = (v[k].x - mean) * rstd * g.x + b.x;
                o.y = (v[k].y - mean) * rstd * g.y + b.y;
                o.z = (v[k].z - mean) * rstd * g.z + b.z;
                o.w = (v[k].w - mean) * rstd * g.w + b.w;
                yr[j] = o;
            }
        }
        if (lane == 0 && mean_out) {
            mean_out[r] = mean;
            rstd_out[r] = rstd;
        }
    }
}

// As sd_layer_norm_bwd_dx (dx may alias dy).
extern "C" __global__ void sd_layer_norm_bwd_dx_w(float* dx, const float* dy, const float* x, const float* gamma,
                                                  const float* mean, const float* rstd, int rows, int d) {
    int lane = threadIdx.x & 31, warps = blockDim.x >> 5, d4 = d >> 2;
    const float4* g4 = (const float4*)gamma;
    for (int r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += gridDim.x * warps) {
        const float4* xr = (const float4*)(x + (long long)r * d);
        const float4* dr = (const float4*)(dy + (long long)r * d);
        float m = mean[r], rs = rstd[r];
        float4 xv[SDV_LN_MAX], gv[SDV_LN_MAX];
        float sg = 0.0f, sgx = 0.0f;
#pragma unroll
        for (int k = 0; k < SDV_LN_MAX; k++) {
            int j = lane + 32 * k;
            if (j < d4) {
                float4 a = xr[j], dd = dr[j], gm = g4[j], g;
                g.x = dd.x * gm.x;
                g.y = dd.y * gm.y;
                g.z = dd.z * gm.z;
                g.w = dd.w * gm.w;
                sg += sdv_sum4(g);
                sgx += (g.x * (a.x - m) * rs + g.y * (a.y - m) * rs) + (g.z * (a.z - m) * rs + g.w * (a.w - m) * rs);
                xv[k] = a;
                gv[k] = g;
            }
        }
        float mg = sdv_warp_allsum(sg) / d;
        float mgx = sdv_warp_allsum(sgx) / d;
        float4* or4 = (float4*)(dx + (long long)r * d);
#pragma unroll
        for (int k = 0; k < SDV_LN_MAX; k++) {
            int j = lane + 32 * k;
            if (j < d4) {
                float4 a = xv[k], g = gv[k], o;
                o.x = rs * (g.x - mg - ((a.x - m) * rs) * mgx);
                o.y = rs * (g.y - mg - ((a.y - m) * rs) * mgx);
                o.z = rs * (g.z - mg - ((a.z - m) * rs) * mgx);
                o.w = rs * (g.w - mg - ((a.w - m) * rs) * mgx);
                or4[j] = o;
            }
        }
    }
}

// As sd_geglu with f % 4 == 0, f4 = f/4, m*f < 2^31: y (m, f) = a * GELU(g)
// of x (m, 2f) = [a | g].
extern "C" __global__ void sd_geglu4(float4* y, const float4* x, int m, int f4) {
    GRID_STRIDE(i, m * f4) {
        int r = i / f4, c = i - r * f4;
        float4 a = x[2 * r * f4 + c], g = x[2 * r * f4 + f4 + c], o;
        o.x = a.x * sd_gelu(g.x);
        o.y = a.y * sd_gelu(g.y);
        o.z = a.z * sd_gelu(g.z);
        o.w = a.w * sd_gelu(g.w);
        y[i] = o;
    }
}

// As sd_geglu_bwd (dx may alias x: each thread reads its values first).
extern "C" __global__ void sd_geglu_bwd4(float4* dx, const float4* dy, const float4* x, int m, int f4) {
    GRID_STRIDE(i, m * f4) {
        int r = i / f4, c = i - r * f4;
        long long ia = 2LL * r * f4 + c;
        float4 a = x[ia], g = x[ia + f4], d = dy[i], oa, og;
        oa.x = d.x * sd_gelu(g.x);
        oa.y = d.y * sd_gelu(g.y);
        oa.z = d.z * sd_gelu(g.z);
        oa.w = d.w * sd_gelu(g.w);
        og.x = d.x * a.x * sd_gelu_grad(g.x);
        og.y = d.y * a.y * sd_gelu_grad(g.y);
        og.z = d.z * a.z * sd_gelu_grad(g.z);
        og.w = d.w * a.w * sd_gelu_grad(g.w);
        dx[ia] = oa;
        dx[ia + f4] = og;
    }
}

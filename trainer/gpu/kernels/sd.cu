// Kernels of the Stable Diffusion nets (sd_*.go): layer norm, GEGLU, GELU and
// quick-GELU, CLIP's token embedding, the VAE's end padding, a masked row
// softmax for sequence attention, and gradient accumulation.

#define SD_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)blockDim.x * gridDim.x)

// y = (x - mean) * rstd * gamma + beta over rows of d values; one block per
// row (rows beyond the grid strided). mean and rstd (may be null) receive the
// row statistics.
extern "C" __global__ void sd_layer_norm(float* y, float* mean_out, float* rstd_out, const float* x, const float* gamma,
                                         const float* beta, long long rows, int d, float eps) {
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + r * d;
        float s = 0.0f;
        for (int i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
        float mean = block_sum(s) / d;
        float v = 0.0f;
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            float t = xr[i] - mean;
            v += t * t;
        }
        float rstd = 1.0f / sqrtf(block_sum(v) / d + eps);
        float* yr = y + r * d;
        for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
        if (threadIdx.x == 0 && mean_out) {
            mean_out[r] = mean;
            rstd_out[r] = rstd;
        }
    }
}

// dx of the layer norm, one block per row; mean and rstd are the forward's.
extern "C" __global__ void sd_layer_norm_bwd_dx(float* dx, const float* dy, const float* x, const float* gamma,
                                                const float* mean, const float* rstd, long long rows, int d) {
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + r * d;
        const float* dyr = dy + r * d;
        float m = mean[r], rs = rstd[r];
        float sg = 0.0f, sgx = 0.0f;
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            float g = dyr[i] * gamma[i];
            sg += g;
            sgx += g * (xr[i] - m) * rs;
        }
        float mg = block_sum(sg) / d;
        float mgx = block_sum(sgx) / d;
        float* dxr = dx + r * d;
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            float xh = (xr[i] - m) * rs;
            dxr[i] = rs * (dy[r * d + i] * gamma[i] - mg - xh * mgx);
        }
    }
}

// Partial column sums of dy*xhat and dy over chunks of rows: block b handles
// columns [32*(b % cblocks), +32) of rows chunk b / cblocks (of chunk rows);
// part holds (chunks, 2, d).
extern "C" __global__ void sd_layer_norm_bwd_part(float* part, const float* dy, const float* x, const float* mean,
                                                  const float* rstd, long long rows, int d, int cblocks, long long chunk) {
    __shared__ float sg[8][33];
    __shared__ float sb[8][33];
    int cb = blockIdx.x % cblocks;
    long long ch = blockIdx.x / cblocks;
    int lane = threadIdx.x & 31, wy = threadIdx.x >> 5;
    int col = cb * 32 + lane;
    float ag = 0.0f, ab = 0.0f;
    long long r0 = ch * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
    if (col < d) {
        for (long long r = r0 + wy; r < r1; r += 8) {
            float g = dy[r * d + col];
            ag += g * (x[r * d + col] - mean[r]) * rstd[r];
            ab += g;
        }
    }
    sg[wy][lane] = ag;
    sb[wy][lane] = ab;
    __syncthreads();
    if (wy == 0 && col < d) {
        float tg = 0.0f, tb = 0.0f;
        for (int k = 0; k < 8; k++) {
            tg += sg[k][lane];
            tb += sb[k][lane];
        }
        part[(ch * 2) * d + col] = tg;
        part[(ch * 2 + 1) * d + col] = tb;
    }
}

// dgamma, dbeta (either may be null) = the sums of the partials.
extern "C" __global__ void sd_layer_norm_bwd_finish(float* dgamma, float* dbeta, const float* part, int chunks, int d) {
    SD_STRIDE(i, d) {
        float g = 0.0f, b = 0.0f;
        for (int c = 0; c < chunks; c++) {
            g += part[(2LL * c) * d + i];
            b += part[(2LL * c + 1) * d + i];
        }
        if (dgamma) dgamma[i] = g;
        if (dbeta) dbeta[i] = b;
    }
}

__device__ __forceinline__ float sd_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

__device__ __forceinline__ float sd_gelu_grad(float x) {
    return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * expf(-0.5f * x * x) * 0.39894228040143268f;
}

// y (m, f) = a * GELU(g) of x (m, 2f) = [a | g].
extern "C" __global__ void sd_geglu(float* y, const float* x, long long m, int f) {
    SD_STRIDE(i, m * f) {
        long long r = i / f;
        int c = (int)(i % f);
        float a = x[r * 2 * f + c], g = x[r * 2 * f + f + c];
        y[i] = a * sd_gelu(g);
    }
}

extern "C" __global__ void sd_geglu_bwd(float* dx, const float* dy, const float* x, long long m, int f) {
    SD_STRIDE(i, m * f) {
        long long r = i / f;
        int c = (int)(i % f);
        float a = x[r * 2 * f + c], g = x[r * 2 * f + f + c];
        dx[r * 2 * f + c] = dy[i] * sd_gelu(g);
        dx[r * 2 * f + f + c] = dy[i] * a * sd_gelu_grad(g);
    }
}

// kind 0: exact GELU, 1: quick GELU x*sigmoid(1.702x).
extern "C" __global__ void sd_act(float* y, const float* x, long long n, int kind) {
    SD_STRIDE(i, n) {
        float v = x[i];
        y[i] = kind == 0 ? sd_gelu(v) : v / (1.0f + expf(-1.702f * v));
    }
}

extern "C" __global__ void sd_act_bwd(float* dx, const float* dy, const float* x, long long n, int kind) {
    SD_STRIDE(i, n) {
        float v = x[i];
        float g;
        if (kind == 0) {
            g = sd_gelu_grad(v);
        } else {
            float s = 1.0f / (1.0f + expf(-1.702f * v));
            g = s + 1.702f * v * s * (1.0f - s);
        }
        dx[i] = dy[i] * g;
    }
}

// y (n, l, d) = token[id] + position[l]; ids (n, l) as floats, checked on the host.
extern "C" __global__ void sd_token_embed(float* y, const float* ids, const float* token, const float* position,
                                          long long n, int l, int d) {
    SD_STRIDE(i, n * l * d) {
        long long t = i / d;
        int c = (int)(i % d);
        int pos = (int)(t % l);
        long long id = (long long)ids[t];
        y[i] = token[id * d + c] + position[(long long)pos * d + c];
    }
}

// y (planes, h+1, w+1) = x (planes, h, w) padded with a zero row and column at the end.
extern "C" __global__ void sd_pad_end(float* y, const float* x, long long planes, int h, int w) {
    long long w1 = w + 1, per = (long long)(h + 1) * w1;
    SD_STRIDE(i, planes * per) {
        long long p = i / per, r = i % per;
        int row = (int)(r / w1), col = (int)(r % w1);
        y[i] = (row < h && col < w) ? x[(p * h + row) * w + col] : 0.0f;
    }
}

// dx (planes, h, w) = dy (planes, h+1, w+1) cropped.
extern "C" __global__ void sd_crop_end(float* dx, const float* dy, long long planes, int h, int w) {
    SD_STRIDE(i, planes * h * w) {
        long long p = i / ((long long)h * w), r = i % ((long long)h * w);
        int row = (int)(r / w), col = (int)(r % w);
        dx[i] = dy[(p * (h + 1) + row) * (w + 1) + col];
    }
}

// p = softmax(s) over rows of lk scores, one warp per row; with causal, row r
// (query r % lq) keeps keys 0..r%lq and the rest are zero. p may alias s.
extern "C" __global__ void sd_softmax_masked(float* p, const float* s, long long rows, int lq, int lk, int causal) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    long long nwarps = ((long long)gridDim.x * blockDim.x) >> 5;
    for (long long r = warp; r < rows; r += nwarps) {
        const float* sr = s + r * lk;
        float* pr = p + r * lk;
        int n = causal ? (int)(r % lq) + 1 : lk;
        float m = __int_as_float(0xff800000);
        for (int j = lane; j < n; j += 32) m = fmaxf(m, sr[j]);
        m = warp_max(m);
        float z = 0.0f;
        for (int j = lane; j < n; j += 32) z += expf(sr[j] - m);
        for (int o = 16; o > 0; o >>= 1) z += __shfl_xor_sync(0xffffffffu, z, o);
        float inv = 1.0f / z;
        for (int j = lane; j < lk; j += 32) pr[j] = j < n ? expf(sr[j] - m) * inv : 0.0f;
    }
}

// y += x.
extern "C" __global__ void sd_accumulate(float* y, const float* x, long long n) {
    SD_STRIDE(i, n) { y[i] += x[i]; }
}

// y += x on float4s: n4 = n/4, both 16-byte aligned.
extern "C" __global__ void sd_accumulate4(float4* y, const float4* x, long long n4) {
    SD_STRIDE(i, n4) {
        float4 u = y[i], v = x[i];
        u.x += v.x;
        u.y += v.y;
        u.z += v.z;
        u.w += v.w;
        y[i] = u;
    }
}

// y = x.
extern "C" __global__ void sd_copy(float* y, const float* x, long long n) {
    SD_STRIDE(i, n) { y[i] = x[i]; }
}

// bfloat16 storage (sd_bf16.go): round to nearest even, float32 arithmetic.

__device__ __forceinline__ unsigned short sd_to_bf16(float x) {
    union {
        float f;
        unsigned int u;
    } c;
    c.f = x;
    if ((c.u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
    c.u += 0x7fffu + ((c.u >> 16) & 1u);
    return (unsigned short)(c.u >> 16);
}

__device__ __forceinline__ float sd_from_bf16(unsigned short h) {
    union {
        float f;
        unsigned int u;
    } c;
    c.u = (unsigned int)h << 16;
    return c.f;
}

// y (bf16) = x.
extern "C" __global__ void sd_f32_to_bf16(unsigned short* y, const float* x, long long n) {
    SD_STRIDE(i, n) { y[i] = sd_to_bf16(x[i]); }
}

// p (bf16) = softmax(s) over rows of lk float32 scores, masked as sd_softmax_masked.
extern "C" __global__ void sd_softmax_bf16(unsigned short* p, const float* s, long long rows, int lq, int lk, int causal) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    long long nwarps = ((long long)gridDim.x * blockDim.x) >> 5;
    for (long long r = warp; r < rows; r += nwarps) {
        const float* sr = s + r * lk;
        unsigned short* pr = p + r * lk;
        int n = causal ? (int)(r % lq) + 1 : lk;
        // one pass: running max and the sum rescaled to it
        float m = __int_as_float(0xff800000), z = 0.0f;
        for (int j = lane; j < n; j += 32) {
            float v = sr[j];
            if (v > m) {
                z = z * expf(m - v) + 1.0f;
                m = v;
            } else {
                z += expf(v - m);
            }
        }
        float gm = warp_max(m);
        z = m == __int_as_float(0xff800000) ? 0.0f : z * expf(m - gm);
        for (int o = 16; o > 0; o >>= 1) z += __shfl_xor_sync(0xffffffffu, z, o);
        float inv = 1.0f / z;
        for (int j = lane; j < lk; j += 32) pr[j] = sd_to_bf16(j < n ? expf(sr[j] - gm) * inv : 0.0f);
    }
}

// ds (bf16) = scale * p * (dp - sum_j dp*p) row-wise; p bf16, dp float32.
extern "C" __global__ void sd_softmax_bwd_bf16(unsigned short* ds, const float* dp, const unsigned short* p, long long rows, int l,
                                               float scale) {
    long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    long long nwarps = ((long long)gridDim.x * blockDim.x) >> 5;
    for (long long r = warp; r < rows; r += nwarps) {
        const float* dpr = dp + r * l;
        const unsigned short* pr = p + r * l;
        unsigned short* out = ds + r * l;
        float acc = 0.0f;
        for (int j = lane; j < l; j += 32) acc += dpr[j] * sd_from_bf16(pr[j]);
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        for (int j = lane; j < l; j += 32) out[j] = sd_to_bf16(scale * sd_from_bf16(pr[j]) * (dpr[j] - acc));
    }
}

// sd_geglu that also keeps its input in bfloat16 (xh, (m, 2f)) for the
// backward pass (sd_saved.go): y from the float32 input as sd_geglu.
extern "C" __global__ void sd_geglu_keep(float* y, unsigned short* xh, const float* x, long long m, int f) {
    SD_STRIDE(i, m * f) {
        long long r = i / f;
        int c = (int)(i % f);
        long long ia = r * 2 * f + c;
        float a = x[ia], g = x[ia + f];
        xh[ia] = sd_to_bf16(a);
        xh[ia + f] = sd_to_bf16(g);
        y[i] = a * sd_gelu(g);
    }
}

// sd_geglu_bwd from the bfloat16 copy of the input.
extern "C" __global__ void sd_geglu_bwd_bf16(float* dx, const float* dy, const unsigned short* xh, long long m, int f) {
    SD_STRIDE(i, m * f) {
        long long r = i / f;
        int c = (int)(i % f);
        long long ia = r * 2 * f + c;
        float a = sd_from_bf16(xh[ia]), g = sd_from_bf16(xh[ia + f]);
        dx[ia] = dy[i] * sd_gelu(g);
        dx[ia + f] = dy[i] * a * sd_gelu_grad(g);
    }
}

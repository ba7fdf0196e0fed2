// Fused 16-bit convolution operands (ops_conv_half_fused.go): the NHWC
// 16-bit input of a convolution built straight from its float32 NCHW source
// (optionally silu(groupnorm(x)), a nearest 2x upsample or SD's zero row and
// column at the end), and the float32 output with bias and a residual added.
// Uses half.cu's conversions and HALF_TILE.

// One-pass split statistics of a group norm: as gn_stats_part (count, mean,
// centred sum of squares per slice, for gn_stats_merge), the sums taken in
// double around the slice's first value so one pass over x suffices.
extern "C" __global__ void gnh_stats_part(double* part, const float* x, int n, int c, int p, int g, int splits) {
    long long gl = (long long)(c / g) * p;
    long long chunk = (gl + splits - 1) / splits;
    if ((gl & 3) == 0) chunk = (chunk + 3) & ~3LL;
    long long blocks = (long long)n * g * splits;
    for (long long b = blockIdx.x; b < blocks; b += gridDim.x) {
        long long ng = b / splits;
        long long i0 = (b % splits) * chunk;
        if (i0 > gl) i0 = gl;
        long long i1 = i0 + chunk < gl ? i0 + chunk : gl;
        long long cnt = i1 - i0;
        const float* xg = x + ng * gl;
        float piv = cnt > 0 ? xg[i0] : 0.0f;
        double s = 0.0, q = 0.0;
        if ((gl & 3) == 0) {
            const float4* v4 = (const float4*)(xg + i0);
            long long n4 = cnt >> 2;
            for (long long k = threadIdx.x; k < n4; k += blockDim.x) {
                float4 f = v4[k];
                double a = (double)f.x - piv, bb = (double)f.y - piv, cc = (double)f.z - piv, dd = (double)f.w - piv;
                s += (a + bb) + (cc + dd);
                q += (a * a + bb * bb) + (cc * cc + dd * dd);
            }
        } else {
            for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
                double d = (double)xg[i] - piv;
                s += d;
                q += d * d;
            }
        }
        s = block_sum(s);
        q = block_sum(q);
        if (threadIdx.x == 0) {
            double m = cnt > 0 ? s / (double)cnt : 0.0;
            part[3 * b] = (double)cnt;
            part[3 * b + 1] = (double)piv + m;
            double m2 = q - s * m;
            part[3 * b + 2] = cnt > 0 && m2 > 0.0 ? m2 : 0.0;
        }
    }
}

// y (frames, oh*ow, c) 16-bit from x (frames, c, ih, iw) float32, one block
// of 256 threads per 32x32 tile as half_from_f32_nhwc. mode 0: ih = oh, iw =
// ow; 1: nearest 2x upsample (ih = oh/2); 2: zero row and column at the end
// (ih = oh-1). gamma non-null: each source value v becomes silu(groupnorm(v))
// with mean/rstd of (frame0 + frame, group) before the upsample or padding.
extern "C" __global__ void half_conv_in_nhwc(unsigned short* y, const float* x, int frames, int c, int oh, int ow,
                                             int ih, int iw, int mode, const float* gamma, const float* beta,
                                             const float* mean, const float* rstd, int frame0, int groups, int bf16) {
    __shared__ float tile[HALF_TILE][HALF_TILE + 1];
    int p = oh * ow;
    long long ip = (long long)ih * iw;
    int ct = (c + HALF_TILE - 1) / HALF_TILE, pt = (p + HALF_TILE - 1) / HALF_TILE;
    long long tiles = (long long)frames * ct * pt;
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    int cg = gamma ? c / groups : 1;
    for (long long b = blockIdx.x; b < tiles; b += gridDim.x) {
        int f = (int)(b / ((long long)ct * pt));
        int r = (int)(b % ((long long)ct * pt));
        int c0 = (r / pt) * HALF_TILE, p0 = (r % pt) * HALF_TILE;
        const float* xf = x + (long long)f * c * ip;
        int pi = p0 + tx;
        int oy = pi / ow, ox = pi - oy * ow;
        int sy = oy, sx = ox;
        bool in = pi < p;
        if (mode == 1) {
            sy = oy >> 1;
            sx = ox >> 1;
        } else if (mode == 2) {
            in = in && oy < ih && ox < iw;
        }
        for (int j = ty; j < HALF_TILE; j += 8) {
            int ci = c0 + j;
            float v = 0.0f;
            if (ci < c && in) {
                v = xf[(long long)ci * ip + (long long)sy * iw + sx];
                if (gamma) {
                    int ng = (frame0 + f) * groups + ci / cg;
                    float a = rstd[ng] * gamma[ci];
                    float h = (v - mean[ng]) * a + beta[ci];
                    v = h / (1.0f + expf(-h));
                }
            }
            tile[j][tx] = v;
        }
        __syncthreads();
        unsigned short* yf = y + (long long)f * c * p;
        for (int j = ty; j < HALF_TILE; j += 8) {
            int po = p0 + j, ci = c0 + tx;
            if (ci < c && po < p) yf[(long long)po * c + ci] = half_from_f32(tile[tx][j], bf16);
        }
        __syncthreads();
    }
}

// y (c, p) float32 = x (p, c) 16-bit + bias[channel] + res (bias and res
// may be null; res may be y: each value is read before it is written).
extern "C" __global__ void half_to_f32_nhwc_res(float* y, const unsigned short* x, const float* bias, const float* res,
                                                int frames, int c, int p, int bf16) {
    __shared__ float tile[HALF_TILE][HALF_TILE + 1];
    int ct = (c + HALF_TILE - 1) / HALF_TILE, pt = (p + HALF_TILE - 1) / HALF_TILE;
    long long tiles = (long long)frames * ct * pt;
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    for (long long b = blockIdx.x; b < tiles; b += gridDim.x) {
        int f = (int)(b / ((long long)ct * pt));
        int r = (int)(b % ((long long)ct * pt));
        int c0 = (r / pt) * HALF_TILE, p0 = (r % pt) * HALF_TILE;
        const unsigned short* xf = x + (long long)f * c * p;
        for (int j = ty; j < HALF_TILE; j += 8) {
            int pi = p0 + j, ci = c0 + tx;
            tile[j][tx] = (ci < c && pi < p) ? half_to_f32(xf[(long long)pi * c + ci], bf16) : 0.0f;
        }
        __syncthreads();
        long long base = (long long)f * c * p;
        for (int j = ty; j < HALF_TILE; j += 8) {
            int ci = c0 + j, pi = p0 + tx;
            if (ci < c && pi < p) {
                long long o = base + (long long)ci * p + pi;
                float v = tile[tx][j] + (bias ? bias[ci] : 0.0f);
                if (res) v += res[o];
                y[o] = v;
            }
        }
        __syncthreads();
    }
}

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

// The 16-bit paths of the trainable temporal convolution (tconv_fast.go).
// bf16 selects bfloat16, else float16; rows of p values, p % 4 == 0 (four
// float32 values in, four 16-bit values out per step).

// Four float32 values (16-byte aligned) and four 16-bit ones (8-byte aligned).
struct alignas(16) tc_f4 {
    float x, y, z, w;
};
struct alignas(8) tc_h4 {
    unsigned int lo, hi;
};

__device__ __forceinline__ tc_h4 tc_half4(tc_f4 v, int bf16) {
    tc_h4 r;
    r.lo = (unsigned int)half_from_f32(v.x, bf16) | ((unsigned int)half_from_f32(v.y, bf16) << 16);
    r.hi = (unsigned int)half_from_f32(v.z, bf16) | ((unsigned int)half_from_f32(v.w, bf16) << 16);
    return r;
}

// y (n, r, p) 16-bit from x (n, c, p): rows c .. c+ones-1 of each frame are
// ones (the bias rows), the rest up to r zero.
extern "C" __global__ void tconv_x_aug(tc_h4* y, const tc_f4* x, int n, int c, int r, int p, int ones, int bf16) {
    int q4 = p / 4;
    int total = n * r * q4;  // under 2^31 (tconvFastOK)
    GRID_STRIDE(i, total) {
        int row = i / q4, q = i - row * q4;
        int f = row / r, ch = row - f * r;
        tc_f4 v;
        if (ch < c) {
            v = x[((long long)f * c + ch) * q4 + q];
        } else {
            float o = ch < c + ones ? 1.0f : 0.0f;
            v.x = v.y = v.z = v.w = o;
        }
        y[i] = tc_half4(v, bf16);
    }
}

// y (c, n, p) 16-bit (channel-major: each channel's frames one row) from x (n, c, p).
extern "C" __global__ void tconv_x_cmajor(tc_h4* y, const tc_f4* x, int n, int c, int p, int bf16) {
    int q4 = p / 4;
    int total = n * c * q4;  // under 2^31 (tconvFastOK)
    GRID_STRIDE(i, total) {
        int row = i / q4, q = i - row * q4;
        int f = row / c, ch = row - f * c;
        y[((long long)ch * n + f) * q4 + q] = tc_half4(x[i], bf16);
    }
}

// From dy (n, c, p): yh (n, c, p) and yt (c, n, p) 16-bit, rs[f*c+ch] the
// float32 sum of row (f, ch); each where non-null. One warp per row.
extern "C" __global__ void tconv_dy_split(tc_h4* yh, tc_h4* yt, float* rs, const tc_f4* dy, long long n, int c, int p, int bf16) {
    int q4 = p / 4;
    long long rows = n * c;
    long long nw = ((long long)blockDim.x * gridDim.x) >> 5;
    int lane = threadIdx.x & 31;
    for (long long row = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5; row < rows; row += nw) {
        long long f = row / c, ch = row - f * c;
        const tc_f4* src = dy + row * q4;
        tc_h4* dt = yt ? yt + (ch * n + f) * q4 : 0;
        float acc = 0.0f;
        for (int q = lane; q < q4; q += 32) {
            tc_f4 v = src[q];
            acc += (v.x + v.y) + (v.z + v.w);
            tc_h4 h = tc_half4(v, bf16);
            if (yh) yh[row * q4 + q] = h;
            if (dt) dt[q] = h;
        }
        if (rs) {
            acc = warp_sum(acc);
            if (lane == 0) rs[row] = acc;
        }
    }
}

// out (k, 3, r) 16-bit from w (k, c, 3): out[kk][j][cc] = w[kk][cc][j] for
// cc < c; with b, out[kk][1][c] and out[kk][1][c+1] are the 16-bit high and
// low parts of b[kk] (their sum is b[kk] to 16 bits); zero elsewhere.
extern "C" __global__ void tconv_wfwd_half(unsigned short* out, const float* w, const float* b, int k, int c, int r, int bf16) {
    int n = k * 3 * r;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        int kk = i / (3 * r), rem = i % (3 * r);
        int j = rem / r, cc = rem % r;
        float v = 0.0f;
        if (cc < c) {
            v = w[(kk * c + cc) * 3 + j];
        } else if (b && j == 1 && cc < c + 2) {
            v = b[kk];
            if (cc == c + 1) v -= half_to_f32(half_from_f32(v, bf16), bf16);
        }
        out[i] = half_from_f32(v, bf16);
    }
}

// dw (k, c, 3) = the sums over q < s of part (3, s, k, c).
extern "C" __global__ void tconv_wgrad_sum(float* dw, const float* part, int s, int k, int c) {
    int n = k * c;
    long long tap = (long long)s * n;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;
        for (int q = 0; q < s; q++) {
            const float* pq = part + (long long)q * n + i;
            a0 += pq[0];
            a1 += pq[tap];
            a2 += pq[2 * tap];
        }
        dw[(long long)i * 3] = a0;
        dw[(long long)i * 3 + 1] = a1;
        dw[(long long)i * 3 + 2] = a2;
    }
}

// out[g][col] = sum of x[r][col] over the rows r of chunk g (x is rows x
// cols, chunks of chunk rows, the last one shorter): column sums in
// coalesced passes, a fixed order per launch shape.
extern "C" __global__ void col_sums(float* out, const float* x, long long rows, long long cols, int chunk) {
    long long chunks = (rows + chunk - 1) / chunk;
    long long total = chunks * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        long long g = i / cols, col = i - g * cols;
        long long r0 = g * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
        float acc = 0.0f;
        for (long long r = r0; r < r1; r++) acc += x[r * cols + col];
        out[i] = acc;
    }
}

// Convolution helpers: patch matrices for cuBLAS (im2col) and their adjoint (col2im),
// for 2D convolution over frames and kernel-3 convolution over the frame axis.

// col[s][(ci*kh+ki)*kw+kj][oy*ow+ox] = x[s][ci][oy*stride-pad+ki][ox*stride-pad+kj] (0 outside),
// for ns frames.
extern "C" __global__ void im2col(float* col, const float* x, int ns, int c, int h, int w, int kh, int kw,
                                  int stride, int pad, int oh, int ow) {
    int ohw = oh * ow;
    int rows = c * kh * kw;
    long long total = (long long)ns * rows * ohw;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        int q = (int)(i % ohw);
        long long rr = i / ohw;
        int row = (int)(rr % rows);
        int s = (int)(rr / rows);
        int kj = row % kw, ki = (row / kw) % kh, ci = row / (kw * kh);
        int oy = q / ow, ox = q % ow;
        int iy = oy * stride - pad + ki, ix = ox * stride - pad + kj;
        float v = 0.0f;
        if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = x[(((long long)s * c + ci) * h + iy) * w + ix];
        col[i] = v;
    }
}

// dx[s][ci][iy][ix] = sum of col entries that im2col copied from there (a gather, no atomics).
extern "C" __global__ void col2im(float* dx, const float* col, int ns, int c, int h, int w, int kh, int kw,
                                  int stride, int pad, int oh, int ow) {
    int ohw = oh * ow;
    int rows = c * kh * kw;
    long long total = (long long)ns * c * h * w;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        int ix = (int)(i % w);
        int iy = (int)((i / w) % h);
        int ci = (int)((i / ((long long)w * h)) % c);
        int s = (int)(i / ((long long)w * h * c));
        const float* cs = col + (long long)s * rows * ohw;
        float acc = 0.0f;
        for (int ki = 0; ki < kh; ki++) {
            int ty = iy + pad - ki;
            if (ty < 0 || ty % stride) continue;
            int oy = ty / stride;
            if (oy >= oh) continue;
            for (int kj = 0; kj < kw; kj++) {
                int tx = ix + pad - kj;
                if (tx < 0 || tx % stride) continue;
                int ox = tx / stride;
                if (ox >= ow) continue;
                acc += cs[((long long)(ci * kh + ki) * kw + kj) * ohw + oy * ow + ox];
            }
        }
        dx[i] = acc;
    }
}

// Temporal patches: col[b,t][ci*3+j][p] = x[b, t+j-1, ci, p] (0 outside the clip).
extern "C" __global__ void tcol(float* col, const float* x, int b, int t, int c, int p) {
    long long total = (long long)b * t * c * 3 * p;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        int q = (int)(i % p);
        long long rr = i / p;
        int row = (int)(rr % (3 * c));
        int bt = (int)(rr / (3 * c));
        int j = row % 3, ci = row / 3;
        int bi = bt / t, tt = bt % t;
        int ts = tt + j - 1;
        col[i] = (ts >= 0 && ts < t) ? x[(((long long)bi * t + ts) * c + ci) * p + q] : 0.0f;
    }
}

// Adjoint of tcol: dx[b,t,ci,p] = sum_j dcol[b, t-j+1][ci*3+j][p].
extern "C" __global__ void tcol_adj(float* dx, const float* dcol, int b, int t, int c, int p) {
    long long total = (long long)b * t * c * p;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)blockDim.x * gridDim.x) {
        int q = (int)(i % p);
        int ci = (int)((i / p) % c);
        int bt = (int)(i / ((long long)p * c));
        int bi = bt / t, tt = bt % t;
        float acc = 0.0f;
        for (int j = 0; j < 3; j++) {
            int to = tt - j + 1;
            if (to < 0 || to >= t) continue;
            acc += dcol[(((long long)bi * t + to) * 3 * c + ci * 3 + j) * p + q];
        }
        dx[i] = acc;
    }
}

// Temporal weights for the windowed backward-data product: v[c][i*k + kk] = w[kk][c][2-i],
// so that dx[t] = v · [dy[t-1]; dy[t]; dy[t+1]].
extern "C" __global__ void tconv_wt_bwd(float* v, const float* w, int k, int c) {
    GRID_STRIDE(idx, c * 3 * k) {
        int ch = idx / (3 * k), r = idx % (3 * k);
        int i = r / k, kk = r % k;
        v[idx] = w[((long long)kk * c + ch) * 3 + (2 - i)];
    }
}

// Sums the windowed temporal filter-gradient partials into dw (K, C, 3). part holds,
// per split s, the (K, 3C) products of the interior GEMM over virtual frames 1..B*T-2
// (only frames with 1 <= t <= T-2 count); bnd0 and bnd1 hold per split and clip the
// (K, 2C) products of the first frame (taps 1, 2) and last frame (taps 0, 1).
extern "C" __global__ void tconv_dw_reduce(float* dw, const float* part, const float* bnd0, const float* bnd1,
                                           int nsplit, int b, int t, int k, int c) {
    int c3 = 3 * c, c2 = 2 * c;
    int nf = b * t - 2;
    GRID_STRIDE(idx, k * c3) {
        int kk = idx / c3, col = idx % c3;
        float acc = 0.0f;
        for (int s = 0; s < nsplit; s++) {
            for (int f = 1; f <= nf; f++) {
                int tt = f % t;
                if (tt >= 1 && tt <= t - 2) acc += part[((long long)s * nf + (f - 1)) * k * c3 + idx];
            }
            for (int bb = 0; bb < b; bb++) {
                long long base = ((long long)s * b + bb) * k * c2 + (long long)kk * c2;
                if (col >= c) acc += bnd0[base + col - c];
                if (col < c2) acc += bnd1[base + col];
            }
        }
        int j = col / c, cc = col % c;
        dw[((long long)kk * c + cc) * 3 + j] = acc;
    }
}

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

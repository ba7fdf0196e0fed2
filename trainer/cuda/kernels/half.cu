// 16-bit operands of the half-precision convolutions (ops_conv_half.go):
// float32 <-> float16 / bfloat16, round to nearest even (the PTX cvt.rn
// conversions: overflow gives inf, as PyTorch's .half() does), optionally
// transposing each frame between NCHW (float32) and NHWC (16-bit); the
// conversions themselves are common.cuh's half_from_f32 / half_to_f32.

// y (16-bit) = x, n values.
extern "C" __global__ void half_from_f32_flat(unsigned short* y, const float* x, int n, int bf16) {
    GRID_STRIDE(i, n) { y[i] = half_from_f32(x[i], bf16); }
}

// y = x (16-bit) + bias[channel], n values of frames (c, p); bias may be null.
extern "C" __global__ void half_to_f32_bias(float* y, const unsigned short* x, const float* bias, int n, int c, int p, int bf16) {
    GRID_STRIDE(i, n) {
        float v = half_to_f32(x[i], bf16);
        if (bias) v += bias[(i / p) % c];
        y[i] = v;
    }
}

// Tiled transposes of frames between (c, p) float32 and (p, c) 16-bit: one
// block of 256 threads per 32x32 tile, tiles numbered frame-major, then
// channel tile, then position tile (a 1D grid of frames*ct*pt blocks).
#define HALF_TILE 32

extern "C" __global__ void half_from_f32_nhwc(unsigned short* y, const float* x, int frames, int c, int p, int bf16) {
    __shared__ float tile[HALF_TILE][HALF_TILE + 1];
    int ct = (c + HALF_TILE - 1) / HALF_TILE, pt = (p + HALF_TILE - 1) / HALF_TILE;
    long long tiles = (long long)frames * ct * pt;
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;  // 32 x 8
    for (long long b = blockIdx.x; b < tiles; b += gridDim.x) {
        int f = (int)(b / ((long long)ct * pt));
        int r = (int)(b % ((long long)ct * pt));
        int c0 = (r / pt) * HALF_TILE, p0 = (r % pt) * HALF_TILE;
        const float* xf = x + (long long)f * c * p;
        for (int j = ty; j < HALF_TILE; j += 8) {
            int ci = c0 + j, pi = p0 + tx;
            tile[j][tx] = (ci < c && pi < p) ? xf[(long long)ci * p + pi] : 0.0f;
        }
        __syncthreads();
        unsigned short* yf = y + (long long)f * c * p;
        for (int j = ty; j < HALF_TILE; j += 8) {
            int pi = p0 + j, ci = c0 + tx;
            if (ci < c && pi < p) yf[(long long)pi * c + ci] = half_from_f32(tile[tx][j], bf16);
        }
        __syncthreads();
    }
}

// y (c, p) float32 = x (p, c) 16-bit + bias[channel] (bias may be null).
extern "C" __global__ void half_to_f32_nhwc(float* y, const unsigned short* x, const float* bias, int frames, int c, int p, int bf16) {
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
        float* yf = y + (long long)f * c * p;
        for (int j = ty; j < HALF_TILE; j += 8) {
            int ci = c0 + j, pi = p0 + tx;
            if (ci < c && pi < p) yf[(long long)ci * p + pi] = tile[tx][j] + (bias ? bias[ci] : 0.0f);
        }
        __syncthreads();
    }
}

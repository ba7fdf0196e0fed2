// Fast paths of Permute (ops_permute.go) for a swap of two adjacent axis
// blocks: x viewed as (n, a, b, c) becomes y (n, b, a, c). Both are exact
// copies; permute6 takes every other permutation.

// c % 4 == 0, both pointers 16-byte aligned: one float4 of y per thread,
// c4 = c/4 (contiguous runs of c: ToTime/FromTime, a joint group norm's
// frame swap).
extern "C" __global__ void permute_swap4(float4* y, const float4* x, int n, int a, int b, int c4) {
    // 32-bit indices: ops_permute.go takes this path below 2^31 floats
    GRID_STRIDE(o, n * a * b * c4) {
        int r = o / c4;
        int ci = o - r * c4;
        int r2 = r / a;
        int ai = r - r2 * a;
        int ni = r2 / b;
        int bi = r2 - ni * b;
        y[o] = x[((ni * a + ai) * b + bi) * c4 + ci];
    }
}

// c == 1: each of the n (a, b) matrices of x transposed into y (b, a), one
// 32x32 tile per block of 256 threads through shared memory, so reads and
// writes are both coalesced (ToTokens/ToFrames).
#define PERM_TILE 32
extern "C" __global__ void permute_tile(float* y, const float* x, int n, int a, int b) {
    __shared__ float tile[PERM_TILE][PERM_TILE + 1];
    int at = (a + PERM_TILE - 1) / PERM_TILE, bt = (b + PERM_TILE - 1) / PERM_TILE;
    long long tiles = (long long)n * at * bt;
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {
        long long ni = t / ((long long)at * bt);
        int r = (int)(t - ni * at * bt);
        int a0 = (r / bt) * PERM_TILE, b0 = (r % bt) * PERM_TILE;
        const float* xm = x + ni * a * b;
        float* ym = y + ni * a * b;
        for (int j = ty; j < PERM_TILE; j += 8) {
            int ai = a0 + j, bi = b0 + tx;
            if (ai < a && bi < b) tile[j][tx] = xm[(long long)ai * b + bi];
        }
        __syncthreads();
        for (int j = ty; j < PERM_TILE; j += 8) {
            int bi = b0 + j, ai = a0 + tx;
            if (ai < a && bi < b) ym[(long long)bi * a + ai] = tile[tx][j];
        }
        __syncthreads();
    }
}

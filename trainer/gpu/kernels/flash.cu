// Fused (flash) sequence attention, forward and backward, on tensor cores
// (flash.go). The package's main module compiles this file empty: flash.go
// builds one module per operand type and padded head dim, prefixed with
// FLASH_DP (the head dim rounded up to 16) and FLASH_BF (1: bfloat16
// operands, 0: float16).
//
// Layouts: q, dq, y, dout are (N, Lq, C) float32 and k, v, dk, dv (N, Lk, C),
// token-major with head h in columns h*dh .. h*dh+dh (dh = C/H). Operands are
// rounded to 16 bits as they are loaded into shared memory; every product
// is an mma.sync m16n8k16 with float32 accumulation. The forward pass keeps
// the log2-domain row logsumexp of the scaled scores (lse, (N, H, Lq)) and a
// 16-bit copy of its output for the backward pass, which recomputes P one
// tile at a time: D = rowsum(dO*O) first, then dQ (a block of queries over
// all keys) and dK, dV (a block of keys over all queries), so no
// positions x positions matrix is ever stored and nothing is accumulated
// atomically.
#ifdef FLASH_DP

#define FL_DP FLASH_DP
#define FL_BF (FLASH_BF != 0)
#define FL_THREADS 256
// Tile sizes: a block is 8 warps of 16 rows (128 queries or keys); the
// other side streams in tiles of FL_BT, smaller for wide heads (registers
// and the 48 KiB of static shared memory).
#define FL_BT (FL_DP <= 80 ? 64 : 32)
#define FL_LD (FL_DP + 8)

typedef unsigned short fl_half;

__device__ __forceinline__ int fl_min(int a, int b) { return a < b ? a : b; }

__device__ __forceinline__ unsigned fl_pack(float lo, float hi) {
    unsigned r;
#if FLASH_BF
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

__device__ __forceinline__ float fl_float(fl_half h) {
#if FLASH_BF
    return __int_as_float((int)((unsigned)h << 16));
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}

__device__ __forceinline__ float fl_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ float fl_log2(float x) {
    float y;
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// c += a b: a 16x16 row-major fragment, b a 16x8 column-major one.
__device__ __forceinline__ void fl_mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
#if FLASH_BF
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Two consecutive 16-bit values (i even).
__device__ __forceinline__ unsigned fl_ld2(const fl_half* s, int i) { return *(const unsigned*)(s + i); }

// The A fragment of rows r0..r0+15, columns c0..c0+15 of a row-major tile.
__device__ __forceinline__ void fl_frag_a(unsigned* a, const fl_half* s, int ld, int r0, int c0) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    a[0] = fl_ld2(s, (r0 + g) * ld + c0 + 2 * t);
    a[1] = fl_ld2(s, (r0 + g + 8) * ld + c0 + 2 * t);
    a[2] = fl_ld2(s, (r0 + g) * ld + c0 + 2 * t + 8);
    a[3] = fl_ld2(s, (r0 + g + 8) * ld + c0 + 2 * t + 8);
}

// c += a * Bᵀ-tile: b is read as rows n0..n0+7 of a row-major tile holding
// B transposed (row = output column), columns c0..c0+15 (the k index).
__device__ __forceinline__ void fl_mma_rows(float* c, const unsigned* a, const fl_half* s, int ld, int n0, int c0) {
    int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const fl_half* p = s + (n0 + g) * ld + c0 + 2 * t;
    fl_mma(c, a, fl_ld2(p, 0), fl_ld2(p, 8));
}

// c += a * B-tile: b is k rows k0..k0+15, columns n0..n0+7 of a row-major
// tile (row = the k index), read transposed by ldmatrix.
__device__ __forceinline__ void fl_mma_cols(float* c, const unsigned* a, const fl_half* s, int ld, int k0, int n0) {
    const fl_half* p = s + (k0 + (threadIdx.x & 15)) * ld + n0;
    unsigned long long sh;
    asm("cvta.to.shared.u64 %0, %1;" : "=l"(sh) : "l"((unsigned long long)p));
    unsigned b0, b1;
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(b0), "=r"(b1) : "r"((unsigned)sh));
    fl_mma(c, a, b0, b1);
}

// The A fragment (16 rows x 16 k) from accumulators s0 (k 0..7) and s1 (k 8..15).
__device__ __forceinline__ void fl_acc_to_a(unsigned* a, const float* s0, const float* s1) {
    a[0] = fl_pack(s0[0], s0[1]);
    a[1] = fl_pack(s0[2], s0[3]);
    a[2] = fl_pack(s1[0], s1[1]);
    a[3] = fl_pack(s1[2], s1[3]);
}

// fl_load rounds rows 0..R-1 of a (rows, dh) float32 tile (row stride C,
// rows >= valid and columns >= dh read as 0) into dst (row stride FL_LD).
template <int R>
__device__ void fl_load(fl_half* dst, const float* src, int valid, int C, int dh, int vec) {
    if (vec) { // dh and C multiples of 4, src 16-byte aligned
        const int q4 = FL_DP / 4;
        for (int i = threadIdx.x; i < R * q4; i += FL_THREADS) {
            int r = i / q4, c = (i - r * q4) * 4;
            float4 v;
            v.x = v.y = v.z = v.w = 0.0f;
            if (r < valid && c < dh) v = *(const float4*)(src + (long long)r * C + c);
            unsigned* d = (unsigned*)(dst + r * FL_LD + c);
            d[0] = fl_pack(v.x, v.y);
            d[1] = fl_pack(v.z, v.w);
        }
        return;
    }
    for (int i = threadIdx.x; i < R * FL_DP; i += FL_THREADS) {
        int r = i / FL_DP, c = i - r * FL_DP;
        float x = (r < valid && c < dh) ? src[(long long)r * C + c] : 0.0f;
        dst[r * FL_LD + c] = (fl_half)(fl_pack(x, 0.0f) & 0xffffu);
    }
}

// The block's (sequence, head, tile) from a 1D grid of N*H*tiles blocks.
struct fl_block {
    int n, h, tile;
};

__device__ __forceinline__ fl_block fl_where(int L, int H) {
    int tiles = (L + 127) / 128;
    int b = blockIdx.x;
    fl_block w;
    w.tile = b % tiles;
    b /= tiles;
    w.h = b % H;
    w.n = b / H;
    return w;
}

#define FL_NEG_INF __int_as_float(0xff800000)

// y = softmax(scale q kᵀ) v per head; lse (log2 domain) and ob (y in 16
// bits) are written when not null. scale2 = scale * log2(e).
extern "C" __global__ void __launch_bounds__(FL_THREADS) flash_fwd(float* y, fl_half* ob, float* lse, const float* q, const float* k,
                                                                 const float* v, int Lq, int Lk, int C, int H, float scale2, int causal,
                                                                 int vec) {
    const int BQ = 128, BK = FL_BT, KC = FL_DP / 16;
    const int QS = BQ * FL_LD, KVS = 2 * BK * FL_LD;
    __shared__ __attribute__((aligned(16))) fl_half sm[QS > KVS ? QS : KVS];
    const int dh = C / H;
    fl_block w = fl_where(Lq, H);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int q0 = w.tile * BQ, r0 = warp * 16;
    const long long qoff = ((long long)w.n * Lq + q0) * C + w.h * dh, koff = (long long)w.n * Lk * C + w.h * dh;

    fl_load<128>(sm, q + qoff, fl_min(BQ, Lq - q0), C, dh, vec);
    __syncthreads();
    unsigned qa[KC][4];
#pragma unroll
    for (int kc = 0; kc < KC; kc++) fl_frag_a(qa[kc], sm, FL_LD, r0, kc * 16);
    __syncthreads();

    float o[FL_DP / 8][4];
#pragma unroll
    for (int d = 0; d < FL_DP / 8; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    float m[2] = {FL_NEG_INF, FL_NEG_INF}, l[2] = {0.0f, 0.0f};
    const int row[2] = {q0 + r0 + g, q0 + r0 + g + 8};
    fl_half* ks = sm;
    fl_half* vs = sm + BK * FL_LD;
    const int kend = causal ? fl_min(Lk, q0 + BQ) : Lk;
    for (int k0 = 0; k0 < kend; k0 += BK) {
        fl_load<FL_BT>(ks, k + koff + (long long)k0 * C, fl_min(BK, Lk - k0), C, dh, vec);
        fl_load<FL_BT>(vs, v + koff + (long long)k0 * C, fl_min(BK, Lk - k0), C, dh, vec);
        __syncthreads();
        float s[BK / 8][4];
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int kc = 0; kc < KC; kc++) fl_mma_rows(s[nt], qa[kc], ks, FL_LD, nt * 8, kc * 16);
        }
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int col = k0 + nt * 8 + 2 * t + (e & 1);
                float x = s[nt][e] * scale2;
                if (col >= Lk || (causal && col > row[e >> 1])) x = FL_NEG_INF;
                s[nt][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
        float base[2], alpha[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
            base[i] = mx[i] == FL_NEG_INF ? 0.0f : mx[i];
            alpha[i] = fl_exp2(m[i] - base[i]);
            m[i] = mx[i];
            l[i] *= alpha[i];
        }
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = fl_exp2(s[nt][e] - base[e >> 1]);
                s[nt][e] = p;
                l[e >> 1] += p;
            }
#pragma unroll
        for (int d = 0; d < FL_DP / 8; d++) {
            o[d][0] *= alpha[0];
            o[d][1] *= alpha[0];
            o[d][2] *= alpha[1];
            o[d][3] *= alpha[1];
        }
#pragma unroll
        for (int kc = 0; kc < BK / 16; kc++) {
            unsigned pa[4];
            fl_acc_to_a(pa, s[2 * kc], s[2 * kc + 1]);
#pragma unroll
            for (int d = 0; d < FL_DP / 8; d++) fl_mma_cols(o[d], pa, vs, FL_LD, kc * 16, d * 8);
        }
        __syncthreads();
    }
    float inv[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
        inv[i] = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        if (lse && t == 0 && row[i] < Lq) lse[((long long)w.n * H + w.h) * Lq + row[i]] = m[i] + fl_log2(l[i]);
    }
#pragma unroll
    for (int d = 0; d < FL_DP / 8; d++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = row[e >> 1], c = d * 8 + 2 * t + (e & 1);
            if (r >= Lq || c >= dh) continue;
            long long at = ((long long)w.n * Lq + r) * C + w.h * dh + c;
            float x = o[d][e] * inv[e >> 1];
            y[at] = x;
            if (ob) ob[at] = (fl_half)(fl_pack(x, 0.0f) & 0xffffu);
        }
}

// dd[n, h, r] = sum over the head's columns of dout * o (o in 16 bits), one
// warp per (n, h, r) row.
extern "C" __global__ void flash_bwd_dot(float* dd, const float* dout, const fl_half* ob, int N, int L, int C, int H) {
    const int dh = C / H, lane = threadIdx.x & 31;
    const long long rows = (long long)N * H * L, warps = (long long)gridDim.x * (FL_THREADS / 32);
    for (long long i = (long long)blockIdx.x * (FL_THREADS / 32) + (threadIdx.x >> 5); i < rows; i += warps) {
        long long nh = i / L;
        int r = (int)(i - nh * L), h = (int)(nh % H);
        long long n = nh / H, at = (n * L + r) * C + (long long)h * dh;
        float acc = 0.0f;
        for (int c = lane; c < dh; c += 32) acc += dout[at + c] * fl_float(ob[at + c]);
        acc = warp_sum(acc);
        if (lane == 0) dd[i] = acc;
    }
}

// dq = scale * sum over keys of dS k, dS = P * (dout vᵀ - D), for a block
// of 128 queries streaming key tiles.
extern "C" __global__ void __launch_bounds__(FL_THREADS) flash_bwd_dq(float* dq, const float* q, const float* k, const float* v,
                                                                    const float* dout, const float* lse, const float* dd, int Lq,
                                                                    int Lk, int C, int H, float scale2, float scale, int causal, int vec) {
    const int BQ = 128, BK = FL_BT, KC = FL_DP / 16;
    const int QS = BQ * FL_LD, KVS = 2 * BK * FL_LD;
    __shared__ __attribute__((aligned(16))) fl_half sm[QS > KVS ? QS : KVS];
    const int dh = C / H;
    fl_block w = fl_where(Lq, H);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int q0 = w.tile * BQ, r0 = warp * 16;
    const long long qoff = ((long long)w.n * Lq + q0) * C + w.h * dh, koff = (long long)w.n * Lk * C + w.h * dh;

    unsigned qa[KC][4], da[KC][4];
    fl_load<128>(sm, q + qoff, fl_min(BQ, Lq - q0), C, dh, vec);
    __syncthreads();
#pragma unroll
    for (int kc = 0; kc < KC; kc++) fl_frag_a(qa[kc], sm, FL_LD, r0, kc * 16);
    __syncthreads();
    fl_load<128>(sm, dout + qoff, fl_min(BQ, Lq - q0), C, dh, vec);
    __syncthreads();
#pragma unroll
    for (int kc = 0; kc < KC; kc++) fl_frag_a(da[kc], sm, FL_LD, r0, kc * 16);
    __syncthreads();

    const int row[2] = {q0 + r0 + g, q0 + r0 + g + 8};
    float lr[2], dr[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        long long at = ((long long)w.n * H + w.h) * Lq + row[i];
        lr[i] = row[i] < Lq ? lse[at] : 0.0f;
        dr[i] = row[i] < Lq ? dd[at] : 0.0f;
    }
    float acc[FL_DP / 8][4];
#pragma unroll
    for (int d = 0; d < FL_DP / 8; d++) acc[d][0] = acc[d][1] = acc[d][2] = acc[d][3] = 0.0f;
    fl_half* ks = sm;
    fl_half* vs = sm + BK * FL_LD;
    const int kend = causal ? fl_min(Lk, q0 + BQ) : Lk;
    for (int k0 = 0; k0 < kend; k0 += BK) {
        const int valid = fl_min(BK, Lk - k0);
        fl_load<FL_BT>(ks, k + koff + (long long)k0 * C, valid, C, dh, vec);
        fl_load<FL_BT>(vs, v + koff + (long long)k0 * C, valid, C, dh, vec);
        __syncthreads();
        float s[BK / 8][4], dp[BK / 8][4];
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
            dp[nt][0] = dp[nt][1] = dp[nt][2] = dp[nt][3] = 0.0f;
#pragma unroll
            for (int kc = 0; kc < KC; kc++) {
                fl_mma_rows(s[nt], qa[kc], ks, FL_LD, nt * 8, kc * 16);
                fl_mma_rows(dp[nt], da[kc], vs, FL_LD, nt * 8, kc * 16);
            }
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int col = k0 + nt * 8 + 2 * t + (e & 1), i = e >> 1;
                float p = fl_exp2(s[nt][e] * scale2 - lr[i]);
                if (col >= Lk || row[i] >= Lq || (causal && col > row[i])) p = 0.0f;
                s[nt][e] = p * (dp[nt][e] - dr[i]);
            }
        }
#pragma unroll
        for (int kc = 0; kc < BK / 16; kc++) {
            unsigned a[4];
            fl_acc_to_a(a, s[2 * kc], s[2 * kc + 1]);
#pragma unroll
            for (int d = 0; d < FL_DP / 8; d++) fl_mma_cols(acc[d], a, ks, FL_LD, kc * 16, d * 8);
        }
        __syncthreads();
    }
#pragma unroll
    for (int d = 0; d < FL_DP / 8; d++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = row[e >> 1], c = d * 8 + 2 * t + (e & 1);
            if (r < Lq && c < dh) dq[((long long)w.n * Lq + r) * C + w.h * dh + c] = acc[d][e] * scale;
        }
}

// dk = scale * sum over queries of dSᵀ q and dv = sum of Pᵀ dout (either
// may be skipped: DK, DV), for a block of 128 keys streaming query tiles.
template <bool DK, bool DV>
__device__ void fl_bwd_kv(float* dk, float* dv, const float* q, const float* k, const float* v, const float* dout, const float* lse,
                          const float* dd, int Lq, int Lk, int C, int H, float scale2, float scale, int causal, int vec) {
    const int BQ = FL_BT, KC = FL_DP / 16;
    const int RS = BQ * FL_LD, KS = 128 * FL_LD, QTS = 2 * RS;
    __shared__ __attribute__((aligned(16))) fl_half sm[KS > QTS ? KS : QTS];
    __shared__ float sl[FL_BT], sd[FL_BT];
    const int dh = C / H;
    fl_block w = fl_where(Lk, H);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int k0 = w.tile * 128, r0 = warp * 16;
    const long long koff = ((long long)w.n * Lk + k0) * C + w.h * dh, qoff = (long long)w.n * Lq * C + w.h * dh;
    const long long loff = ((long long)w.n * H + w.h) * Lq;

    unsigned ka[KC][4], va[DK ? KC : 1][4];
    fl_load<128>(sm, k + koff, fl_min(128, Lk - k0), C, dh, vec);
    __syncthreads();
#pragma unroll
    for (int kc = 0; kc < KC; kc++) fl_frag_a(ka[kc], sm, FL_LD, r0, kc * 16);
    __syncthreads();
    if (DK) {
        fl_load<128>(sm, v + koff, fl_min(128, Lk - k0), C, dh, vec);
        __syncthreads();
#pragma unroll
        for (int kc = 0; kc < KC; kc++) fl_frag_a(va[kc], sm, FL_LD, r0, kc * 16);
        __syncthreads();
    }
    float ak[DK ? FL_DP / 8 : 1][4], av[DV ? FL_DP / 8 : 1][4];
#pragma unroll
    for (int d = 0; d < FL_DP / 8; d++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            if (DK) ak[d][e] = 0.0f;
            if (DV) av[d][e] = 0.0f;
        }
    const int key[2] = {k0 + r0 + g, k0 + r0 + g + 8};
    fl_half* qs = sm;
    fl_half* dos = sm + RS;
    const int qstart = causal ? (k0 / BQ) * BQ : 0;
    for (int q0 = qstart; q0 < Lq; q0 += BQ) {
        const int valid = fl_min(BQ, Lq - q0);
        fl_load<FL_BT>(qs, q + qoff + (long long)q0 * C, valid, C, dh, vec);
        fl_load<FL_BT>(dos, dout + qoff + (long long)q0 * C, valid, C, dh, vec);
        for (int i = threadIdx.x; i < BQ; i += FL_THREADS) {
            bool ok = q0 + i < Lq;
            sl[i] = ok ? lse[loff + q0 + i] : __int_as_float(0x7f800000);
            sd[i] = ok ? dd[loff + q0 + i] : 0.0f;
        }
        __syncthreads();
        // sᵀ (keys x queries) and P
        float s[BQ / 8][4];
#pragma unroll
        for (int nt = 0; nt < BQ / 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int kc = 0; kc < KC; kc++) fl_mma_rows(s[nt], ka[kc], qs, FL_LD, nt * 8, kc * 16);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int qi = nt * 8 + 2 * t + (e & 1);
                float p = fl_exp2(s[nt][e] * scale2 - sl[qi]);
                if (key[e >> 1] >= Lk || (causal && key[e >> 1] > q0 + qi)) p = 0.0f;
                s[nt][e] = p;
            }
        }
        if (DV) {
#pragma unroll
            for (int kc = 0; kc < BQ / 16; kc++) {
                unsigned a[4];
                fl_acc_to_a(a, s[2 * kc], s[2 * kc + 1]);
#pragma unroll
                for (int d = 0; d < FL_DP / 8; d++) fl_mma_cols(av[d], a, dos, FL_LD, kc * 16, d * 8);
            }
        }
        if (DK) {
#pragma unroll
            for (int nt = 0; nt < BQ / 8; nt++) {
                float dp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                for (int kc = 0; kc < KC; kc++) fl_mma_rows(dp, va[kc], dos, FL_LD, nt * 8, kc * 16);
#pragma unroll
                for (int e = 0; e < 4; e++) s[nt][e] *= dp[e] - sd[nt * 8 + 2 * t + (e & 1)];
            }
#pragma unroll
            for (int kc = 0; kc < BQ / 16; kc++) {
                unsigned a[4];
                fl_acc_to_a(a, s[2 * kc], s[2 * kc + 1]);
#pragma unroll
                for (int d = 0; d < FL_DP / 8; d++) fl_mma_cols(ak[d], a, qs, FL_LD, kc * 16, d * 8);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int d = 0; d < FL_DP / 8; d++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = key[e >> 1], c = d * 8 + 2 * t + (e & 1);
            if (r >= Lk || c >= dh) continue;
            long long at = ((long long)w.n * Lk + r) * C + w.h * dh + c;
            if (DK) dk[at] = ak[d][e] * scale;
            if (DV) dv[at] = av[d][e];
        }
}

#define FL_BWD_KV_ARGS                                                                                                                 \
    float *dk, float *dv, const float *q, const float *k, const float *v, const float *dout, const float *lse, const float *dd, int Lq, \
        int Lk, int C, int H, float scale2, float scale, int causal, int vec
#define FL_BWD_KV_PASS dk, dv, q, k, v, dout, lse, dd, Lq, Lk, C, H, scale2, scale, causal, vec

// Narrow heads get dK and dV from one kernel, wide ones (registers) from
// two (flashFusedKV in flash.go); either gets the single ones when only
// one gradient is asked for.
#if FL_DP <= 80
extern "C" __global__ void __launch_bounds__(FL_THREADS) flash_bwd_dkv(FL_BWD_KV_ARGS) { fl_bwd_kv<true, true>(FL_BWD_KV_PASS); }
#endif
extern "C" __global__ void __launch_bounds__(FL_THREADS) flash_bwd_dk(FL_BWD_KV_ARGS) { fl_bwd_kv<true, false>(FL_BWD_KV_PASS); }
extern "C" __global__ void __launch_bounds__(FL_THREADS) flash_bwd_dv(FL_BWD_KV_ARGS) { fl_bwd_kv<false, true>(FL_BWD_KV_PASS); }

#endif

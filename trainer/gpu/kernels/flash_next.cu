// The next version of flash.cu, opt-in (PIPELINE_SD_FLASH_NEXT=1) until a
// GPU run has checked it (TestFlash*) and timed it (TestFlashBench): the
// backward kernels take their tiles in 32-row sub-tiles, the forward
// softmax one FFMA per score, short sequences share blocks (below), and
// FLASH_MINB sets a register budget. Its index logic (packing, row spans,
// skipped tiles) was checked against float64 attention and its gradients
// by a tile-level emulation, not yet on the device.
//
// Fused (flash) sequence attention, forward and backward, on tensor cores
// (flash.go). The package's main module compiles this file empty: flash.go
// builds one module per operand type and padded head dim, prefixed with
// FLASH_DP (the head dim rounded up to 16) and FLASH_BF (1: bfloat16
// operands, 0: float16).
//
// Layouts: q, dq, y, dout are (N, Lq, C) float32 and k, v, dk, dv (N, Lk, C),
// token-major with head h in columns h*dh .. h*dh+dh (dh = C/H). Once per
// layer and pass, flash_pack rounds q, k, v (and flash_pack_dot dout) to 16
// bits in a head-major padded layout (N, H, L, FLASH_DP), zeros beyond dh,
// so every tile is a contiguous block of 16-byte rows that cp.async copies
// into shared memory (two stages: the next tile loads while this one is
// multiplied). Fragments come out of shared memory by ldmatrix; every
// product is an mma.sync m16n8k16 with float32 accumulation. The forward
// pass keeps the log2-domain row logsumexp of the scaled scores (lse,
// (N, H, Lq)) and a 16-bit copy of its output (padded layout) for the
// backward pass, which recomputes P one tile at a time: D = rowsum(dO*O)
// first (with dO's packing), then dQ (a block of queries over all keys) and
// dK, dV (a block of keys over all queries), so no positions x positions
// matrix is ever stored and nothing is accumulated atomically. Short
// sequences (temporal attention over 25 frames) share a block: seg whole
// sequences fill its 128 rows, each row attending its own sequence's keys,
// and a warp skips the key tiles none of its rows attends.
#ifdef FLASH_DP

#define FL_DP FLASH_DP
#define FL_THREADS 256
// Tile sizes: a block is 8 warps of 16 rows (128 queries or keys); the
// other side streams in tiles of FL_BT, smaller for wide heads (registers
// and the 48 KiB of static shared memory).
#define FL_BT (FL_DP <= 80 ? 64 : 32)
#define FL_LD (FL_DP + 8)
#define FL_CH (FL_DP / 8)
// The backward kernels take the other side's tile in sub-tiles of FL_SB
// rows (fewer live scores); FLASH_MINB asks for that many resident blocks
// per SM (a register budget) where the head is at most 80 wide.
#define FL_SB 32
#ifndef FLASH_MINB
#define FLASH_MINB 1
#endif
#define FL_MINB (FL_DP <= 80 ? FLASH_MINB : 1)

typedef unsigned short fl_half;

__device__ __forceinline__ int fl_min(int a, int b) { return a < b ? a : b; }

__device__ __forceinline__ unsigned fl_pack(float lo, float hi) {
    unsigned r;
#if FLASH_BF
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#else
    // round to nearest: beyond 65504 gives inf (a loss-scale overflow stays visible)
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

__device__ __forceinline__ unsigned fl_smem(const void* p) {
    unsigned long long a;
    asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"((unsigned long long)p));
    return (unsigned)a;
}

__device__ __forceinline__ void fl_ldm4(unsigned* r, const fl_half* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(fl_smem(p)));
}

__device__ __forceinline__ void fl_ldm4t(unsigned* r, const fl_half* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(fl_smem(p)));
}

// The A fragment of rows r0..r0+15, columns c0..c0+15 of a row-major tile.
__device__ __forceinline__ void fl_frag_a(unsigned* a, const fl_half* s, int r0, int c0) {
    int l = threadIdx.x & 31, mi = l >> 3;
    fl_ldm4(a, s + (r0 + (mi & 1) * 8 + (l & 7)) * FL_LD + c0 + (mi >> 1) * 8);
}

// c0, c1 += a * Bᵀ-tile for the output columns n0..n0+7 and n0+8..n0+15:
// rows n0..n0+15 of a row-major tile holding B transposed (row = output
// column), columns k0..k0+15 (the k index).
__device__ __forceinline__ void fl_mma_rows2(float* c0, float* c1, const unsigned* a, const fl_half* s, int n0, int k0) {
    int l = threadIdx.x & 31, mi = l >> 3;
    unsigned b[4];
    fl_ldm4(b, s + (n0 + (mi >> 1) * 8 + (l & 7)) * FL_LD + k0 + (mi & 1) * 8);
    fl_mma(c0, a, b[0], b[1]);
    fl_mma(c1, a, b[2], b[3]);
}

// c0, c1 += a * B-tile: b is k rows k0..k0+15, columns n0..n0+15 of a
// row-major tile (row = the k index), read transposed by ldmatrix.
__device__ __forceinline__ void fl_mma_cols2(float* c0, float* c1, const unsigned* a, const fl_half* s, int k0, int n0) {
    int l = threadIdx.x & 31, mi = l >> 3;
    unsigned b[4];
    fl_ldm4t(b, s + (k0 + (mi & 1) * 8 + (l & 7)) * FL_LD + n0 + (mi >> 1) * 8);
    fl_mma(c0, a, b[0], b[1]);
    fl_mma(c1, a, b[2], b[3]);
}

// The A fragment (16 rows x 16 k) from accumulators s0 (k 0..7) and s1 (k 8..15).
__device__ __forceinline__ void fl_acc_to_a(unsigned* a, const float* s0, const float* s1) {
    a[0] = fl_pack(s0[0], s0[1]);
    a[1] = fl_pack(s0[2], s0[3]);
    a[2] = fl_pack(s1[0], s1[1]);
    a[3] = fl_pack(s1[2], s1[3]);
}

__device__ __forceinline__ void fl_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void fl_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
// Rows. One side of a block is a run of rows v = 0, 1, ... of a virtual
// sequence: one sequence (seg 1; a block of 128 queries or keys is one
// tile of it), or seg whole sequences of length L one after another
// (short sequences packed, seg*L <= 128). Row v of the run is row v % L of
// sequence v / L of the group: fl_off is its row offset from the group's
// first row in a head-major (N, H, L, ...) layout.
__device__ __forceinline__ long long fl_off(int v, int L, int H) {
    int j = v / L;
    return (long long)j * H * L + (v - j * L);
}

// fl_tile queues the copy of rows v0..v0+R-1 of the run from head (the
// group's first row of a packed (N, H, L, FL_DP) matrix) into dst (row
// stride FL_LD); rows >= valid (counted from v0) are zero-filled.
template <int R>
__device__ __forceinline__ void fl_tile(fl_half* dst, const fl_half* head, int v0, int valid, int L, int H) {
    for (int i = threadIdx.x; i < R * FL_CH; i += FL_THREADS) {
        int r = i / FL_CH, c = (i - r * FL_CH) * 8;
        bool ok = r < valid;
        const fl_half* g = ok ? head + fl_off(v0 + r, L, H) * FL_DP + c : head;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(fl_smem(dst + r * FL_LD + c)), "l"(g), "r"(ok ? 16 : 0));
    }
}

// fl_row queues the copy of n floats of rows v0.. of a (N, H, L) array
// from head (valid ones; the rest zero) into dst.
__device__ __forceinline__ void fl_row(float* dst, const float* head, int v0, int n, int valid, int L, int H) {
    for (int i = threadIdx.x; i < n; i += FL_THREADS) {
        bool ok = i < valid;
        const float* g = ok ? head + fl_off(v0 + i, L, H) : head;
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(fl_smem(dst + i)), "l"(g), "r"(ok ? 4 : 0));
    }
}

// fl_load_a loads rows v0..v0+127 of the run into shared memory and keeps
// this warp's 16 rows as A fragments.
__device__ __forceinline__ void fl_load_a(unsigned (*a)[4], fl_half* sm, const fl_half* head, int v0, int valid, int L, int H) {
    fl_tile<128>(sm, head, v0, valid, L, H);
    fl_commit();
    fl_wait<0>();
    __syncthreads();
#pragma unroll
    for (int kc = 0; kc < FL_DP / 16; kc++) fl_frag_a(a[kc], sm, (threadIdx.x >> 5) * 16, kc * 16);
    __syncthreads();
}

// The block's first sequence n, head h, tile and run length lv from a 1D
// grid of N*H*tiles blocks (seg 1) or H*ceil(N/seg) blocks (packed).
struct fl_block {
    int n, h, tile, lv;
};

__device__ __forceinline__ fl_block fl_where(int L, int H, int N, int seg) {
    int tiles = seg > 1 ? 1 : (L + 127) / 128;
    int b = blockIdx.x;
    fl_block w;
    w.tile = b % tiles;
    b /= tiles;
    w.h = b % H;
    w.n = (b / H) * seg;
    w.lv = seg > 1 ? fl_min(seg, N - w.n) * L : L;
    return w;
}

// The start of head h of sequence n of a packed (N, H, L, FL_DP) matrix.
__device__ __forceinline__ long long fl_head(const fl_block& w, int H, int L) { return ((long long)w.n * H + w.h) * L * FL_DP; }

// fl_span sets [lo, hi): the columns (of a run of cols) that row v may
// attend: its own sequence when packed, else all, or up to the diagonal
// when causal (keys: row v is a key, the columns queries).
__device__ __forceinline__ void fl_span(int v, int seg, int L, int cols, int causal, bool keys, int& lo, int& hi) {
    lo = 0;
    hi = cols;
    if (seg > 1) {
        lo = (v / L) * L;
        hi = lo + L;
    } else if (causal) {
        if (keys)
            lo = v;
        else
            hi = fl_min(cols, v + 1);
    }
}

// fl_warp_span: for this warp's rows first..first+15 (those < rows; the
// rest are never written),
// [alo, ahi): the columns any of them attends, and [blo, bhi): those all
// of them attend.
__device__ __forceinline__ void fl_warp_span(int first, int rows, int seg, int L, int cols, int causal, bool keys, int& alo, int& ahi,
                                             int& blo, int& bhi) {
    int last = fl_min(first + 15, rows - 1);
    fl_span(first, seg, L, cols, causal, keys, alo, bhi);
    fl_span(last, seg, L, cols, causal, keys, blo, ahi);
}

#define FL_NEG_INF __int_as_float(0xff800000)

// flash_pack writes src (N, L, C) float32 as dst (N, H, L, FL_DP) in 16
// bits, zeros beyond the head dim; rows = N*H*L, two values per thread.
extern "C" __global__ void flash_pack(unsigned* dst, const float* src, int rows, int L, int C, int H) {
    const int dh = C / H, half = FL_DP / 2;
    const long long pairs = (long long)rows * half;
    for (long long i = (long long)blockIdx.x * FL_THREADS + threadIdx.x; i < pairs; i += (long long)gridDim.x * FL_THREADS) {
        int row = (int)(i / half), c = (int)(i - (long long)row * half) * 2;
        int nh = row / L, r = row - nh * L, h = nh % H, n = nh / H;
        const float* s = src + ((long long)n * L + r) * C + h * dh;
        dst[i] = fl_pack(c < dh ? s[c] : 0.0f, c + 1 < dh ? s[c + 1] : 0.0f);
    }
}

// flash_pack_dot packs dout as flash_pack does and writes dd[n, h, r] = the
// head's dot product of the packed dout and the forward pass's 16-bit
// output ob (padded), one warp per (n, h, r) row.
extern "C" __global__ void flash_pack_dot(unsigned* dst, float* dd, const float* dout, const unsigned* ob, int rows, int L, int C, int H) {
    const int dh = C / H, lane = threadIdx.x & 31, half = FL_DP / 2;
    const int warps = gridDim.x * (FL_THREADS / 32);
    for (int row = blockIdx.x * (FL_THREADS / 32) + (threadIdx.x >> 5); row < rows; row += warps) {
        int nh = row / L, r = row - nh * L, h = nh % H, n = nh / H;
        const float* s = dout + ((long long)n * L + r) * C + h * dh;
        float acc = 0.0f;
        for (int p = lane; p < half; p += 32) {
            int c = 2 * p;
            unsigned x = fl_pack(c < dh ? s[c] : 0.0f, c + 1 < dh ? s[c + 1] : 0.0f), o = ob[(long long)row * half + p];
            dst[(long long)row * half + p] = x;
            acc += fl_float((fl_half)(x & 0xffffu)) * fl_float((fl_half)(o & 0xffffu)) + fl_float((fl_half)(x >> 16)) * fl_float((fl_half)(o >> 16));
        }
        acc = warp_sum(acc);
        if (lane == 0) dd[row] = acc;
    }
}

// y = softmax(scale q kᵀ) v per head (q, k, v packed); lse (log2 domain)
// and ob (y in 16 bits, packed) are written when not null.
// scale2 = scale * log2(e); seg > 1: short sequences (Lq = Lk) seg per block.
extern "C" __global__ void __launch_bounds__(FL_THREADS, FL_MINB) flash_fwd(float* y, unsigned* ob, float* lse, const fl_half* q, const fl_half* k,
                                                                          const fl_half* v, int Lq, int Lk, int C, int H, float scale2,
                                                                          int causal, int N, int seg) {
    const int BQ = 128, BK = FL_BT, KC = FL_DP / 16, ST = 2 * BK * FL_LD, QS = BQ * FL_LD;
    __shared__ __attribute__((aligned(16))) fl_half sm[QS > 2 * ST ? QS : 2 * ST];
    const int dh = C / H;
    fl_block w = fl_where(Lq, H, N, seg);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int q0 = w.tile * BQ, r0 = warp * 16;
    const int lq = seg > 1 ? w.lv : Lq, lk = seg > 1 ? w.lv : Lk;
    const fl_half* kb = k + fl_head(w, H, Lk);
    const fl_half* vb = v + fl_head(w, H, Lk);

    unsigned qa[KC][4];
    fl_load_a(qa, sm, q + fl_head(w, H, Lq), q0, fl_min(BQ, lq - q0), Lq, H);

    float o[FL_DP / 8][4];
#pragma unroll
    for (int d = 0; d < FL_DP / 8; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    float m[2] = {FL_NEG_INF, FL_NEG_INF}, l[2] = {0.0f, 0.0f};
    const int row[2] = {q0 + r0 + g, q0 + r0 + g + 8};
    int lo[2], hi[2], alo = 0, ahi = 0, blo = 0, bhi = 0;
    const bool live = q0 + r0 < lq; // a warp past the last query only helps load
    if (live) fl_warp_span(q0 + r0, lq, seg, Lq, lk, causal, false, alo, ahi, blo, bhi);
#pragma unroll
    for (int i = 0; i < 2; i++) fl_span(row[i], seg, Lq, lk, causal, false, lo[i], hi[i]);
    const int kend = causal ? fl_min(lk, q0 + BQ) : lk, tiles = (kend + BK - 1) / BK;
    fl_tile<FL_BT>(sm, kb, 0, fl_min(BK, lk), Lk, H);
    fl_tile<FL_BT>(sm + BK * FL_LD, vb, 0, fl_min(BK, lk), Lk, H);
    fl_commit();
    for (int it = 0; it < tiles; it++) {
        const int k0 = it * BK;
        if (it + 1 < tiles) {
            fl_half* nx = sm + ((it + 1) & 1) * ST;
            fl_tile<FL_BT>(nx, kb, k0 + BK, fl_min(BK, lk - k0 - BK), Lk, H);
            fl_tile<FL_BT>(nx + BK * FL_LD, vb, k0 + BK, fl_min(BK, lk - k0 - BK), Lk, H);
            fl_commit();
            fl_wait<1>();
        } else {
            fl_wait<0>();
        }
        __syncthreads();
        const fl_half* ks = sm + (it & 1) * ST;
        const fl_half* vs = ks + BK * FL_LD;
        if (live && k0 < ahi && k0 + BK > alo) {
            float s[BK / 8][4];
#pragma unroll
            for (int nt = 0; nt < BK / 16; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) s[2 * nt][e] = s[2 * nt + 1][e] = 0.0f;
#pragma unroll
                for (int kc = 0; kc < KC; kc++) fl_mma_rows2(s[2 * nt], s[2 * nt + 1], qa[kc], ks, nt * 16, kc * 16);
            }
            // the row maximum of the raw scores (scale2 > 0), m and the
            // exponents in the scaled log2 domain: one FFMA per score
            const bool edge = k0 < blo || k0 + BK > bhi;
            float mx[2] = {FL_NEG_INF, FL_NEG_INF};
#pragma unroll
            for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float x = s[nt][e];
                    if (edge) {
                        int col = k0 + nt * 8 + 2 * t + (e & 1);
                        if (col < lo[e >> 1] || col >= hi[e >> 1]) x = FL_NEG_INF;
                    }
                    s[nt][e] = x;
                    mx[e >> 1] = fmaxf(mx[e >> 1], x);
                }
            float base[2], alpha[2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
                mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
                mx[i] = fmaxf(m[i], mx[i] * scale2);
                base[i] = mx[i] == FL_NEG_INF ? 0.0f : mx[i];
                alpha[i] = fl_exp2(m[i] - base[i]);
                m[i] = mx[i];
                l[i] *= alpha[i];
            }
#pragma unroll
            for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float p = fl_exp2(s[nt][e] * scale2 - base[e >> 1]); // contracted to an FFMA
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
                for (int d = 0; d < FL_DP / 16; d++) fl_mma_cols2(o[2 * d], o[2 * d + 1], pa, vs, kc * 16, d * 16);
            }
        }
        __syncthreads();
    }
    if (!live) return;
    float inv[2];
    const long long lhead = ((long long)w.n * H + w.h) * Lq;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
        inv[i] = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        if (lse && t == 0 && row[i] < lq) lse[lhead + fl_off(row[i], Lq, H)] = m[i] + fl_log2(l[i]);
    }
    unsigned* oh = ob ? ob + fl_head(w, H, Lq) / 2 : ob;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int r = row[i];
        if (r >= lq) continue;
        long long at = ((long long)w.n * Lq + r) * C + w.h * dh, oat = fl_off(r, Lq, H) * FL_DP;
#pragma unroll
        for (int d = 0; d < FL_DP / 8; d++) {
            int c = d * 8 + 2 * t;
            float x0 = o[d][2 * i] * inv[i], x1 = o[d][2 * i + 1] * inv[i];
            if (c < dh) y[at + c] = x0;
            if (c + 1 < dh) y[at + c + 1] = x1;
            if (oh) oh[(oat + c) / 2] = fl_pack(x0, x1);
        }
    }
}

// dq = scale * sum over keys of dS k, dS = P * (dout vᵀ - D), for a block
// of 128 queries streaming key tiles (q, k, v, dout packed).
extern "C" __global__ void __launch_bounds__(FL_THREADS, FL_MINB) flash_bwd_dq(float* dq, const fl_half* q, const fl_half* k, const fl_half* v,
                                                                             const fl_half* dout, const float* lse, const float* dd, int Lq,
                                                                             int Lk, int C, int H, float scale2, float scale, int causal,
                                                                             int N, int seg) {
    const int BQ = 128, BK = FL_BT, KC = FL_DP / 16, ST = 2 * BK * FL_LD, QS = BQ * FL_LD;
    __shared__ __attribute__((aligned(16))) fl_half sm[QS > 2 * ST ? QS : 2 * ST];
    const int dh = C / H;
    fl_block w = fl_where(Lq, H, N, seg);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int q0 = w.tile * BQ, r0 = warp * 16;
    const int lq = seg > 1 ? w.lv : Lq, lk = seg > 1 ? w.lv : Lk;
    const long long qh = fl_head(w, H, Lq);
    const fl_half* kb = k + fl_head(w, H, Lk);
    const fl_half* vb = v + fl_head(w, H, Lk);

    unsigned qa[KC][4], da[KC][4];
    fl_load_a(qa, sm, q + qh, q0, fl_min(BQ, lq - q0), Lq, H);
    fl_load_a(da, sm, dout + qh, q0, fl_min(BQ, lq - q0), Lq, H);

    const int row[2] = {q0 + r0 + g, q0 + r0 + g + 8};
    const bool live = q0 + r0 < lq;
    int lo[2], hi[2], alo = 0, ahi = 0, blo = 0, bhi = 0;
    if (live) fl_warp_span(q0 + r0, lq, seg, Lq, lk, causal, false, alo, ahi, blo, bhi);
    float lr[2], dr[2];
    const long long lhead = ((long long)w.n * H + w.h) * Lq;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        fl_span(row[i], seg, Lq, lk, causal, false, lo[i], hi[i]);
        long long at = lhead + fl_off(row[i], Lq, H);
        lr[i] = row[i] < lq ? lse[at] : 0.0f;
        dr[i] = row[i] < lq ? dd[at] : 0.0f;
    }
    float acc[FL_DP / 8][4];
#pragma unroll
    for (int d = 0; d < FL_DP / 8; d++) acc[d][0] = acc[d][1] = acc[d][2] = acc[d][3] = 0.0f;
    const int kend = causal ? fl_min(lk, q0 + BQ) : lk, tiles = (kend + BK - 1) / BK;
    fl_tile<FL_BT>(sm, kb, 0, fl_min(BK, lk), Lk, H);
    fl_tile<FL_BT>(sm + BK * FL_LD, vb, 0, fl_min(BK, lk), Lk, H);
    fl_commit();
    for (int it = 0; it < tiles; it++) {
        const int k0 = it * BK;
        if (it + 1 < tiles) {
            fl_half* nx = sm + ((it + 1) & 1) * ST;
            fl_tile<FL_BT>(nx, kb, k0 + BK, fl_min(BK, lk - k0 - BK), Lk, H);
            fl_tile<FL_BT>(nx + BK * FL_LD, vb, k0 + BK, fl_min(BK, lk - k0 - BK), Lk, H);
            fl_commit();
            fl_wait<1>();
        } else {
            fl_wait<0>();
        }
        __syncthreads();
        const fl_half* ks = sm + (it & 1) * ST;
        const fl_half* vs = ks + BK * FL_LD;
#pragma unroll 1
        for (int sb = 0; live && sb < BK; sb += FL_SB) {
            const int c0 = k0 + sb;
            if (c0 >= ahi || c0 + FL_SB <= alo) continue;
            const bool edge = c0 < blo || c0 + FL_SB > bhi;
            float s[FL_SB / 8][4], dp[FL_SB / 8][4];
#pragma unroll
            for (int nt = 0; nt < FL_SB / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[nt][e] = dp[nt][e] = 0.0f;
#pragma unroll
            for (int nt = 0; nt < FL_SB / 16; nt++)
#pragma unroll
                for (int kc = 0; kc < KC; kc++) {
                    fl_mma_rows2(s[2 * nt], s[2 * nt + 1], qa[kc], ks, sb + nt * 16, kc * 16);
                    fl_mma_rows2(dp[2 * nt], dp[2 * nt + 1], da[kc], vs, sb + nt * 16, kc * 16);
                }
#pragma unroll
            for (int nt = 0; nt < FL_SB / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int i = e >> 1;
                    float p = fl_exp2(s[nt][e] * scale2 - lr[i]);
                    if (edge) {
                        int col = c0 + nt * 8 + 2 * t + (e & 1);
                        if (col < lo[i] || col >= hi[i]) p = 0.0f;
                    }
                    s[nt][e] = p * (dp[nt][e] - dr[i]);
                }
#pragma unroll
            for (int kc = 0; kc < FL_SB / 16; kc++) {
                unsigned a[4];
                fl_acc_to_a(a, s[2 * kc], s[2 * kc + 1]);
#pragma unroll
                for (int d = 0; d < FL_DP / 16; d++) fl_mma_cols2(acc[2 * d], acc[2 * d + 1], a, ks, sb + kc * 16, d * 16);
            }
        }
        __syncthreads();
    }
    if (!live) return;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int r = row[i];
        if (r >= lq) continue;
        long long at = ((long long)w.n * Lq + r) * C + w.h * dh;
#pragma unroll
        for (int d = 0; d < FL_DP / 8; d++)
#pragma unroll
            for (int j = 0; j < 2; j++) {
                int c = d * 8 + 2 * t + j;
                if (c < dh) dq[at + c] = acc[d][2 * i + j] * scale;
            }
    }
}

// dk = scale * sum over queries of dSᵀ q and dv = sum of Pᵀ dout (either
// may be skipped: DK, DV), for a block of 128 keys streaming query tiles.
template <bool DK, bool DV>
__device__ void fl_bwd_kv(float* dk, float* dv, const fl_half* q, const fl_half* k, const fl_half* v, const fl_half* dout,
                          const float* lse, const float* dd, int Lq, int Lk, int C, int H, float scale2, float scale, int causal, int N,
                          int seg) {
    const int BQ = FL_BT, KC = FL_DP / 16, ST = 2 * BQ * FL_LD, KS = 128 * FL_LD;
    __shared__ __attribute__((aligned(16))) fl_half sm[KS > 2 * ST ? KS : 2 * ST];
    __shared__ float sl[2][FL_BT], sd[2][FL_BT];
    const int dh = C / H;
    fl_block w = fl_where(Lk, H, N, seg);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int k0 = w.tile * 128, r0 = warp * 16;
    const int lq = seg > 1 ? w.lv : Lq, lk = seg > 1 ? w.lv : Lk;
    const long long kh = fl_head(w, H, Lk);
    const fl_half* qb = q + fl_head(w, H, Lq);
    const fl_half* ob = dout + fl_head(w, H, Lq);
    const float* lb = lse + ((long long)w.n * H + w.h) * Lq;
    const float* db = dd + ((long long)w.n * H + w.h) * Lq;

    unsigned ka[KC][4], va[DK ? KC : 1][4];
    fl_load_a(ka, sm, k + kh, k0, fl_min(128, lk - k0), Lk, H);
    if (DK) fl_load_a(va, sm, v + kh, k0, fl_min(128, lk - k0), Lk, H);
    float ak[DK ? FL_DP / 8 : 1][4], av[DV ? FL_DP / 8 : 1][4];
#pragma unroll
    for (int d = 0; d < FL_DP / 8; d++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            if (DK) ak[d][e] = 0.0f;
            if (DV) av[d][e] = 0.0f;
        }
    const int key[2] = {k0 + r0 + g, k0 + r0 + g + 8};
    const bool live = k0 + r0 < lk;
    int lo[2], hi[2], alo = 0, ahi = 0, blo = 0, bhi = 0;
    if (live) fl_warp_span(k0 + r0, lk, seg, Lk, lq, causal, true, alo, ahi, blo, bhi);
#pragma unroll
    for (int i = 0; i < 2; i++) fl_span(key[i], seg, Lk, lq, causal, true, lo[i], hi[i]);
    const int qstart = causal ? (k0 / BQ) * BQ : 0, tiles = (lq - qstart + BQ - 1) / BQ;
    if (tiles > 0) {
        fl_tile<FL_BT>(sm, qb, qstart, fl_min(BQ, lq - qstart), Lq, H);
        fl_tile<FL_BT>(sm + BQ * FL_LD, ob, qstart, fl_min(BQ, lq - qstart), Lq, H);
        fl_row(sl[0], lb, qstart, BQ, lq - qstart, Lq, H);
        fl_row(sd[0], db, qstart, BQ, lq - qstart, Lq, H);
        fl_commit();
    }
    for (int it = 0; it < tiles; it++) {
        const int q0 = qstart + it * BQ, cur = it & 1;
        if (it + 1 < tiles) {
            const int nq = q0 + BQ, nv = fl_min(BQ, lq - nq);
            fl_half* nx = sm + (cur ^ 1) * ST;
            fl_tile<FL_BT>(nx, qb, nq, nv, Lq, H);
            fl_tile<FL_BT>(nx + BQ * FL_LD, ob, nq, nv, Lq, H);
            fl_row(sl[cur ^ 1], lb, nq, BQ, nv, Lq, H);
            fl_row(sd[cur ^ 1], db, nq, BQ, nv, Lq, H);
            fl_commit();
            fl_wait<1>();
        } else {
            fl_wait<0>();
        }
        __syncthreads();
        const fl_half* qs = sm + cur * ST;
        const fl_half* dos = qs + BQ * FL_LD;
#pragma unroll 1
        for (int sb = 0; live && sb < BQ; sb += FL_SB) {
            const int c0 = q0 + sb;
            if (c0 >= ahi || c0 + FL_SB <= alo) continue;
            const bool edge = c0 < blo || c0 + FL_SB > bhi;
            // sᵀ (keys x queries c0..c0+FL_SB-1) and P
            float s[FL_SB / 8][4];
#pragma unroll
            for (int nt = 0; nt < FL_SB / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[nt][e] = 0.0f;
#pragma unroll
            for (int nt = 0; nt < FL_SB / 16; nt++)
#pragma unroll
                for (int kc = 0; kc < KC; kc++) fl_mma_rows2(s[2 * nt], s[2 * nt + 1], ka[kc], qs, sb + nt * 16, kc * 16);
#pragma unroll
            for (int nt = 0; nt < FL_SB / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int qi = sb + nt * 8 + 2 * t + (e & 1);
                    float p = fl_exp2(s[nt][e] * scale2 - sl[cur][qi]);
                    if (edge && (q0 + qi < lo[e >> 1] || q0 + qi >= hi[e >> 1])) p = 0.0f;
                    s[nt][e] = p;
                }
            if (DV) {
#pragma unroll
                for (int kc = 0; kc < FL_SB / 16; kc++) {
                    unsigned a[4];
                    fl_acc_to_a(a, s[2 * kc], s[2 * kc + 1]);
#pragma unroll
                    for (int d = 0; d < FL_DP / 16; d++) fl_mma_cols2(av[2 * d], av[2 * d + 1], a, dos, sb + kc * 16, d * 16);
                }
            }
            if (DK) {
#pragma unroll
                for (int nt = 0; nt < FL_SB / 16; nt++) {
                    float dp[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
                    for (int kc = 0; kc < KC; kc++) fl_mma_rows2(dp[0], dp[1], va[kc], dos, sb + nt * 16, kc * 16);
#pragma unroll
                    for (int j = 0; j < 2; j++)
#pragma unroll
                        for (int e = 0; e < 4; e++) s[2 * nt + j][e] *= dp[j][e] - sd[cur][sb + (2 * nt + j) * 8 + 2 * t + (e & 1)];
                }
#pragma unroll
                for (int kc = 0; kc < FL_SB / 16; kc++) {
                    unsigned a[4];
                    fl_acc_to_a(a, s[2 * kc], s[2 * kc + 1]);
#pragma unroll
                    for (int d = 0; d < FL_DP / 16; d++) fl_mma_cols2(ak[2 * d], ak[2 * d + 1], a, qs, sb + kc * 16, d * 16);
                }
            }
        }
        __syncthreads();
    }
    if (!live) return;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int r = key[i];
        if (r >= lk) continue;
        long long at = ((long long)w.n * Lk + r) * C + w.h * dh;
#pragma unroll
        for (int d = 0; d < FL_DP / 8; d++)
#pragma unroll
            for (int j = 0; j < 2; j++) {
                int c = d * 8 + 2 * t + j;
                if (c >= dh) continue;
                if (DK) dk[at + c] = ak[d][2 * i + j] * scale;
                if (DV) dv[at + c] = av[d][2 * i + j];
            }
    }
}

#define FL_BWD_KV_ARGS                                                                                                                 \
    float *dk, float *dv, const fl_half *q, const fl_half *k, const fl_half *v, const fl_half *dout, const float *lse, const float *dd, \
        int Lq, int Lk, int C, int H, float scale2, float scale, int causal, int N, int seg
#define FL_BWD_KV_PASS dk, dv, q, k, v, dout, lse, dd, Lq, Lk, C, H, scale2, scale, causal, N, seg

// Narrow heads get dK and dV from one kernel, wide ones (registers) from
// two (flashFusedKV in flash.go); either gets the single ones when only
// one gradient is asked for.
#if FL_DP <= 80
extern "C" __global__ void __launch_bounds__(FL_THREADS, FL_MINB) flash_bwd_dkv(FL_BWD_KV_ARGS) { fl_bwd_kv<true, true>(FL_BWD_KV_PASS); }
#endif
extern "C" __global__ void __launch_bounds__(FL_THREADS, FL_MINB) flash_bwd_dk(FL_BWD_KV_ARGS) { fl_bwd_kv<true, false>(FL_BWD_KV_PASS); }
extern "C" __global__ void __launch_bounds__(FL_THREADS, FL_MINB) flash_bwd_dv(FL_BWD_KV_ARGS) { fl_bwd_kv<false, true>(FL_BWD_KV_PASS); }

#endif

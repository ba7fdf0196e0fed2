// Fused attention for long sequences of narrow heads (the 4096 x 4096
// self-attention of SD's top level, head dim 40): each warp owns 32 rows
// (two m16 tiles) instead of flash.cu's 16, so every K/V (or Q/dO)
// fragment read from shared memory by ldmatrix feeds two tensor-core
// products, halving the shared-memory traffic that bounds flash.cu's
// kernels at these head dims; a block is 8 warps, 256 rows. Only the real
// head dim rounded up to 8 (FLASH_D8) is multiplied: for d40 (padded to
// 48) the products over the head dim end in an m16n8k8 step and those
// producing it use 5 n8 tiles, not 6. Same packed layouts, log2-domain
// logsumexp and 16-bit saved output as flash.cu, so either file's backward
// kernels take either's forward results; no causal mask (flash.go uses
// flash.cu's kernels for causal attention and short sequences).
#if defined(FLASH_DP) && FLASH_DP <= 64 // flashWideDP in flash.go

#define FW_MT 2                      // m16 tiles per warp
#define FW_ROWS (FW_MT * 16 * 8)     // rows per block (flashWideRows in flash.go)
#define FW_N8 (FLASH_D8 / 8)         // n8 tiles of the real head dim
#define FW_K16 (FLASH_D8 / 16)       // its full k16 steps
#define FW_K8 (FW_N8 & 1)            // and a last k8 one
#define FW_KC (FW_K16 + FW_K8)       // A fragments per m16 tile
#define FW_BKF 64                    // forward: keys per tile
#define FW_BB 32                     // backward: keys (dq) or queries (dkv) per tile
#define FW_SM (FW_ROWS * FL_LD > 4 * FW_BKF * FL_LD ? FW_ROWS * FL_LD : 4 * FW_BKF * FL_LD)

// Two floats read as one 8-byte load (the softmax rows of two adjacent queries).
struct __attribute__((aligned(8))) fw_f2 {
    float x, y;
};

// c += a b with k = 8: a is rows 0..15 (a0: rows 0..7, a1: rows 8..15), b one register.
__device__ __forceinline__ void fw_mma8(float* c, unsigned a0, unsigned a1, unsigned b0) {
#if FLASH_BF
    asm("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(b0));
#else
    asm("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(b0));
#endif
}

__device__ __forceinline__ void fw_ldm2t(unsigned* r, const fl_half* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(fl_smem(p)));
}

// fw_load_a loads rows 0..FW_ROWS-1 of a padded matrix into shared memory
// and keeps this warp's 32 rows as A fragments over the real head dim.
__device__ __forceinline__ void fw_load_a(unsigned (*a)[FW_KC][4], fl_half* sm, const fl_half* src, int valid) {
    fl_tile<FW_ROWS>(sm, src, valid);
    fl_commit();
    fl_wait<0>();
    __syncthreads();
#pragma unroll
    for (int mt = 0; mt < FW_MT; mt++)
#pragma unroll
        for (int kc = 0; kc < FW_KC; kc++) fl_frag_a(a[mt][kc], sm, (threadIdx.x >> 5) * 32 + mt * 16, kc * 16);
    __syncthreads();
}

// s[mt][j] += a[mt] (rows) times Bᵀ for the NT n8 tiles of rows n0.. of a
// row-major tile (row = output column, columns = the head dim).
template <int NT>
__device__ __forceinline__ void fw_rows(float (*s)[NT][4], unsigned (*a)[FW_KC][4], const fl_half* b) {
    const int l = threadIdx.x & 31, mi = l >> 3;
#pragma unroll
    for (int nt = 0; nt < NT / 2; nt++)
#pragma unroll
        for (int kc = 0; kc < FW_K16; kc++) {
            unsigned f[4];
            fl_ldm4(f, b + (nt * 16 + (mi >> 1) * 8 + (l & 7)) * FL_LD + kc * 16 + (mi & 1) * 8);
#pragma unroll
            for (int mt = 0; mt < FW_MT; mt++) {
                fl_mma(s[mt][2 * nt], a[mt][kc], f[0], f[1]);
                fl_mma(s[mt][2 * nt + 1], a[mt][kc], f[2], f[3]);
            }
        }
#if FW_K8
#pragma unroll
    for (int n4 = 0; n4 < NT / 4; n4++) {
        unsigned f[4]; // four n8 tiles, columns FW_K16*16 .. +7
        fl_ldm4(f, b + (n4 * 32 + l) * FL_LD + FW_K16 * 16);
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int mt = 0; mt < FW_MT; mt++) fw_mma8(s[mt][4 * n4 + j], a[mt][FW_K16][0], a[mt][FW_K16][1], f[j]);
    }
#endif
}

// acc[mt][d] += p[mt] (KT k16 steps of accumulators) times a row-major
// tile b (row = the k index, columns = the head dim), its FW_N8 n8 tiles.
template <int KT>
__device__ __forceinline__ void fw_cols(float (*acc)[FW_N8][4], float (*p)[2 * KT][4], const fl_half* b) {
    const int l = threadIdx.x & 31, mi = l >> 3;
#pragma unroll
    for (int kc = 0; kc < KT; kc++) {
        unsigned pa[FW_MT][4];
#pragma unroll
        for (int mt = 0; mt < FW_MT; mt++) fl_acc_to_a(pa[mt], p[mt][2 * kc], p[mt][2 * kc + 1]);
#pragma unroll
        for (int d = 0; d < FW_N8 / 2; d++) {
            unsigned f[4];
            fl_ldm4t(f, b + (kc * 16 + (mi & 1) * 8 + (l & 7)) * FL_LD + d * 16 + (mi >> 1) * 8);
#pragma unroll
            for (int mt = 0; mt < FW_MT; mt++) {
                fl_mma(acc[mt][2 * d], pa[mt], f[0], f[1]);
                fl_mma(acc[mt][2 * d + 1], pa[mt], f[2], f[3]);
            }
        }
#if FW_N8 & 1
        unsigned f[2];
        fw_ldm2t(f, b + (kc * 16 + (mi & 1) * 8 + (l & 7)) * FL_LD + (FW_N8 - 1) * 8);
#pragma unroll
        for (int mt = 0; mt < FW_MT; mt++) fl_mma(acc[mt][FW_N8 - 1], pa[mt], f[0], f[1]);
#endif
    }
}

// The block's (sequence, head, tile) for tiles of FW_ROWS rows.
__device__ __forceinline__ fl_block fw_where(int L, int H) {
    int tiles = (L + FW_ROWS - 1) / FW_ROWS;
    int b = blockIdx.x;
    fl_block w;
    w.tile = b % tiles;
    b /= tiles;
    w.h = b % H;
    w.n = b / H;
    return w;
}

// flash_fwd_w is flash_fwd (causal must be 0) with 32 queries per warp.
extern "C" __global__ void __launch_bounds__(FL_THREADS) flash_fwd_w(float* y, unsigned* ob, float* lse, const fl_half* q, const fl_half* k,
                                                                   const fl_half* v, int Lq, int Lk, int C, int H, float scale2, int causal) {
    const int BK = FW_BKF, ST = 2 * BK * FL_LD;
    __shared__ __attribute__((aligned(16))) fl_half sm[FW_SM];
    const int dh = C / H;
    fl_block w = fw_where(Lq, H);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int q0 = w.tile * FW_ROWS, r0 = warp * 32;
    const fl_half* kb = k + fl_head(w, H, Lk);
    const fl_half* vb = v + fl_head(w, H, Lk);

    unsigned qa[FW_MT][FW_KC][4];
    fw_load_a(qa, sm, q + fl_head(w, H, Lq) + (long long)q0 * FL_DP, fl_min(FW_ROWS, Lq - q0));

    float o[FW_MT][FW_N8][4], m[FW_MT][2], l[FW_MT][2];
#pragma unroll
    for (int mt = 0; mt < FW_MT; mt++) {
#pragma unroll
        for (int d = 0; d < FW_N8; d++) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.0f;
        m[mt][0] = m[mt][1] = FL_NEG_INF;
        l[mt][0] = l[mt][1] = 0.0f;
    }
    const bool live = q0 + r0 < Lq; // a warp past the last query only helps load
    const int tiles = (Lk + BK - 1) / BK;
    fl_tile<FW_BKF>(sm, kb, fl_min(BK, Lk));
    fl_tile<FW_BKF>(sm + BK * FL_LD, vb, fl_min(BK, Lk));
    fl_commit();
    for (int it = 0; it < tiles; it++) {
        const int k0 = it * BK;
        if (it + 1 < tiles) {
            fl_half* nx = sm + ((it + 1) & 1) * ST;
            fl_tile<FW_BKF>(nx, kb + (long long)(k0 + BK) * FL_DP, fl_min(BK, Lk - k0 - BK));
            fl_tile<FW_BKF>(nx + BK * FL_LD, vb + (long long)(k0 + BK) * FL_DP, fl_min(BK, Lk - k0 - BK));
            fl_commit();
            fl_wait<1>();
        } else {
            fl_wait<0>();
        }
        __syncthreads();
        const fl_half* ks = sm + (it & 1) * ST;
        const fl_half* vs = ks + BK * FL_LD;
        if (live) {
            float s[FW_MT][BK / 8][4];
#pragma unroll
            for (int mt = 0; mt < FW_MT; mt++)
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt++) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
            fw_rows<BK / 8>(s, qa, ks);
            if (k0 + BK > Lk) {
#pragma unroll
                for (int mt = 0; mt < FW_MT; mt++)
#pragma unroll
                    for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++)
                            if (k0 + nt * 8 + 2 * t + (e & 1) >= Lk) s[mt][nt][e] = FL_NEG_INF;
            }
#pragma unroll
            for (int mt = 0; mt < FW_MT; mt++) {
                float mx[2] = {FL_NEG_INF, FL_NEG_INF};
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) mx[e >> 1] = fmaxf(mx[e >> 1], s[mt][nt][e]);
                float base[2], alpha[2];
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
                    mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
                    // scaled running max (scale2 > 0: the max of the scaled scores)
                    const float nm = fmaxf(m[mt][i], mx[i] * scale2);
                    base[i] = nm == FL_NEG_INF ? 0.0f : nm;
                    alpha[i] = fl_exp2(m[mt][i] - base[i]);
                    m[mt][i] = nm;
                    l[mt][i] *= alpha[i];
                }
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float p = fl_exp2(s[mt][nt][e] * scale2 - base[e >> 1]);
                        s[mt][nt][e] = p;
                        l[mt][e >> 1] += p;
                    }
#pragma unroll
                for (int d = 0; d < FW_N8; d++) {
                    o[mt][d][0] *= alpha[0];
                    o[mt][d][1] *= alpha[0];
                    o[mt][d][2] *= alpha[1];
                    o[mt][d][3] *= alpha[1];
                }
            }
            fw_cols<BK / 16>(o, s, vs);
        }
        __syncthreads();
    }
    if (!live) return;
    const long long ohead = fl_head(w, H, Lq) / 2;
#pragma unroll
    for (int mt = 0; mt < FW_MT; mt++) {
        float inv[2];
        int row[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            row[i] = q0 + r0 + mt * 16 + g + 8 * i;
            l[mt][i] += __shfl_xor_sync(0xffffffffu, l[mt][i], 1);
            l[mt][i] += __shfl_xor_sync(0xffffffffu, l[mt][i], 2);
            inv[i] = l[mt][i] > 0.0f ? 1.0f / l[mt][i] : 0.0f;
            if (lse && t == 0 && row[i] < Lq) lse[((long long)w.n * H + w.h) * Lq + row[i]] = m[mt][i] + fl_log2(l[mt][i]);
        }
#pragma unroll
        for (int d = 0; d < FL_DP / 8; d++)
#pragma unroll
            for (int i = 0; i < 2; i++) {
                const int r = row[i], c = d * 8 + 2 * t;
                if (r >= Lq) continue;
                float x0 = 0.0f, x1 = 0.0f; // the padding beyond FLASH_D8: zeros (flash_pack_dot reads them)
                if (d < FW_N8) {
                    x0 = o[mt][d < FW_N8 ? d : 0][2 * i] * inv[i];
                    x1 = o[mt][d < FW_N8 ? d : 0][2 * i + 1] * inv[i];
                    long long at = ((long long)w.n * Lq + r) * C + w.h * dh + c;
                    if (c < dh) y[at] = x0;
                    if (c + 1 < dh) y[at + 1] = x1;
                }
                if (ob) ob[ohead + ((long long)r * FL_DP + c) / 2] = fl_pack(x0, x1);
            }
    }
}

// flash_bwd_dq_w is flash_bwd_dq (causal must be 0) with 32 queries per
// warp and key tiles of FW_BB.
extern "C" __global__ void __launch_bounds__(FL_THREADS) flash_bwd_dq_w(float* dq, const fl_half* q, const fl_half* k, const fl_half* v,
                                                                      const fl_half* dout, const float* lse, const float* dd, int Lq,
                                                                      int Lk, int C, int H, float scale2, float scale, int causal) {
    const int BK = FW_BB, ST = 2 * BK * FL_LD;
    __shared__ __attribute__((aligned(16))) fl_half sm[FW_SM];
    const int dh = C / H;
    fl_block w = fw_where(Lq, H);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int q0 = w.tile * FW_ROWS, r0 = warp * 32;
    const long long qh = fl_head(w, H, Lq) + (long long)q0 * FL_DP;
    const fl_half* kb = k + fl_head(w, H, Lk);
    const fl_half* vb = v + fl_head(w, H, Lk);

    unsigned qa[FW_MT][FW_KC][4], da[FW_MT][FW_KC][4];
    fw_load_a(qa, sm, q + qh, fl_min(FW_ROWS, Lq - q0));
    fw_load_a(da, sm, dout + qh, fl_min(FW_ROWS, Lq - q0));

    const bool live = q0 + r0 < Lq;
    float lr[FW_MT][2], dr[FW_MT][2], acc[FW_MT][FW_N8][4];
#pragma unroll
    for (int mt = 0; mt < FW_MT; mt++) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int row = q0 + r0 + mt * 16 + g + 8 * i;
            const long long at = ((long long)w.n * H + w.h) * Lq + row;
            lr[mt][i] = row < Lq ? lse[at] : 0.0f;
            dr[mt][i] = row < Lq ? dd[at] : 0.0f;
        }
#pragma unroll
        for (int d = 0; d < FW_N8; d++) acc[mt][d][0] = acc[mt][d][1] = acc[mt][d][2] = acc[mt][d][3] = 0.0f;
    }
    const int tiles = (Lk + BK - 1) / BK;
    fl_tile<FW_BB>(sm, kb, fl_min(BK, Lk));
    fl_tile<FW_BB>(sm + BK * FL_LD, vb, fl_min(BK, Lk));
    fl_commit();
    for (int it = 0; it < tiles; it++) {
        const int k0 = it * BK;
        if (it + 1 < tiles) {
            fl_half* nx = sm + ((it + 1) & 1) * ST;
            fl_tile<FW_BB>(nx, kb + (long long)(k0 + BK) * FL_DP, fl_min(BK, Lk - k0 - BK));
            fl_tile<FW_BB>(nx + BK * FL_LD, vb + (long long)(k0 + BK) * FL_DP, fl_min(BK, Lk - k0 - BK));
            fl_commit();
            fl_wait<1>();
        } else {
            fl_wait<0>();
        }
        __syncthreads();
        const fl_half* ks = sm + (it & 1) * ST;
        const fl_half* vs = ks + BK * FL_LD;
        if (live) {
            float s[FW_MT][BK / 8][4], dp[FW_MT][BK / 8][4];
#pragma unroll
            for (int mt = 0; mt < FW_MT; mt++)
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[mt][nt][e] = dp[mt][nt][e] = 0.0f;
            fw_rows<BK / 8>(s, qa, ks);
            fw_rows<BK / 8>(dp, da, vs);
            const bool edge = k0 + BK > Lk;
#pragma unroll
            for (int mt = 0; mt < FW_MT; mt++)
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int i = e >> 1;
                        float p = fl_exp2(s[mt][nt][e] * scale2 - lr[mt][i]);
                        if (edge && k0 + nt * 8 + 2 * t + (e & 1) >= Lk) p = 0.0f;
                        s[mt][nt][e] = p * (dp[mt][nt][e] - dr[mt][i]);
                    }
            fw_cols<BK / 16>(acc, s, ks);
        }
        __syncthreads();
    }
    if (!live) return;
#pragma unroll
    for (int mt = 0; mt < FW_MT; mt++)
#pragma unroll
        for (int d = 0; d < FW_N8; d++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = q0 + r0 + mt * 16 + g + 8 * (e >> 1), c = d * 8 + 2 * t + (e & 1);
                if (r < Lq && c < dh) dq[((long long)w.n * Lq + r) * C + w.h * dh + c] = acc[mt][d][e] * scale;
            }
}

// flash_bwd_dkv_w is flash_bwd_dkv (causal must be 0) with 32 keys per
// warp and query tiles of FW_BB.
extern "C" __global__ void __launch_bounds__(FL_THREADS) flash_bwd_dkv_w(float* dk, float* dv, const fl_half* q, const fl_half* k,
                                                                       const fl_half* v, const fl_half* dout, const float* lse,
                                                                       const float* dd, int Lq, int Lk, int C, int H, float scale2,
                                                                       float scale, int causal) {
    const int BQ = FW_BB, ST = 2 * BQ * FL_LD;
    __shared__ __attribute__((aligned(16))) fl_half sm[FW_SM];
    __shared__ __attribute__((aligned(16))) float sl[2][FW_BB], sd[2][FW_BB];
    const int dh = C / H;
    fl_block w = fw_where(Lk, H);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int k0 = w.tile * FW_ROWS, r0 = warp * 32;
    const long long kh = fl_head(w, H, Lk) + (long long)k0 * FL_DP;
    const fl_half* qb = q + fl_head(w, H, Lq);
    const fl_half* ob = dout + fl_head(w, H, Lq);
    const float* lb = lse + ((long long)w.n * H + w.h) * Lq;
    const float* db = dd + ((long long)w.n * H + w.h) * Lq;

    unsigned ka[FW_MT][FW_KC][4], va[FW_MT][FW_KC][4];
    fw_load_a(ka, sm, k + kh, fl_min(FW_ROWS, Lk - k0));
    fw_load_a(va, sm, v + kh, fl_min(FW_ROWS, Lk - k0));
    float ak[FW_MT][FW_N8][4], av[FW_MT][FW_N8][4];
#pragma unroll
    for (int mt = 0; mt < FW_MT; mt++)
#pragma unroll
        for (int d = 0; d < FW_N8; d++)
#pragma unroll
            for (int e = 0; e < 4; e++) ak[mt][d][e] = av[mt][d][e] = 0.0f;
    const bool live = k0 + r0 < Lk;
    const int tiles = (Lq + BQ - 1) / BQ;
    fl_tile<FW_BB>(sm, qb, fl_min(BQ, Lq));
    fl_tile<FW_BB>(sm + BQ * FL_LD, ob, fl_min(BQ, Lq));
    fl_row(sl[0], lb, BQ, Lq);
    fl_row(sd[0], db, BQ, Lq);
    fl_commit();
    for (int it = 0; it < tiles; it++) {
        const int q0 = it * BQ, cur = it & 1;
        if (it + 1 < tiles) {
            const int nq = q0 + BQ, nv = fl_min(BQ, Lq - nq);
            fl_half* nx = sm + (cur ^ 1) * ST;
            fl_tile<FW_BB>(nx, qb + (long long)nq * FL_DP, nv);
            fl_tile<FW_BB>(nx + BQ * FL_LD, ob + (long long)nq * FL_DP, nv);
            fl_row(sl[cur ^ 1], lb + nq, BQ, nv);
            fl_row(sd[cur ^ 1], db + nq, BQ, nv);
            fl_commit();
            fl_wait<1>();
        } else {
            fl_wait<0>();
        }
        __syncthreads();
        const fl_half* qs = sm + cur * ST;
        const fl_half* dos = qs + BQ * FL_LD;
        if (live) {
            // sᵀ (keys x queries) and dPᵀ = V dOᵀ
            float s[FW_MT][BQ / 8][4], dp[FW_MT][BQ / 8][4];
#pragma unroll
            for (int mt = 0; mt < FW_MT; mt++)
#pragma unroll
                for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[mt][nt][e] = dp[mt][nt][e] = 0.0f;
            fw_rows<BQ / 8>(s, ka, qs);
            const bool edge = q0 + BQ > Lq;
#pragma unroll
            for (int nt = 0; nt < BQ / 8; nt++) {
                const int qi = nt * 8 + 2 * t;
                const fw_f2 lv = *reinterpret_cast<const fw_f2*>(&sl[cur][qi]);
#pragma unroll
                for (int mt = 0; mt < FW_MT; mt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float p = fl_exp2(s[mt][nt][e] * scale2 - ((e & 1) ? lv.y : lv.x));
                        if (edge && q0 + qi + (e & 1) >= Lq) p = 0.0f;
                        s[mt][nt][e] = p;
                    }
            }
            fw_cols<BQ / 16>(av, s, dos);
            fw_rows<BQ / 8>(dp, va, dos);
#pragma unroll
            for (int nt = 0; nt < BQ / 8; nt++) {
                const fw_f2 dv2 = *reinterpret_cast<const fw_f2*>(&sd[cur][nt * 8 + 2 * t]);
#pragma unroll
                for (int mt = 0; mt < FW_MT; mt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[mt][nt][e] *= dp[mt][nt][e] - ((e & 1) ? dv2.y : dv2.x);
            }
            fw_cols<BQ / 16>(ak, s, qs);
        }
        __syncthreads();
    }
    if (!live) return;
#pragma unroll
    for (int mt = 0; mt < FW_MT; mt++)
#pragma unroll
        for (int d = 0; d < FW_N8; d++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = k0 + r0 + mt * 16 + g + 8 * (e >> 1), c = d * 8 + 2 * t + (e & 1);
                if (r >= Lk || c >= dh) continue;
                const long long at = ((long long)w.n * Lk + r) * C + w.h * dh + c;
                dk[at] = ak[mt][d][e] * scale;
                dv[at] = av[mt][d][e];
            }
}

#endif

"""Tile-level emulation of trainer/gpu/kernels/flash_next.cu's index logic (fl_where,
fl_off, fl_span, fl_warp_span, tile and sub-tile skips, masked edges, short
sequences packed several to a block) in float64, against softmax attention and
its gradients computed directly. Every output element must be written (NaN
otherwise) and match to 1e-9. Not a model of the 16-bit rounding or of the PTX;
a check of the kernels' row/column bookkeeping without a GPU. Needs numpy.

Usage: python3 bench/flash_next_emulate.py
"""
import numpy as np, math, sys
LOG2E = 1 / math.log(2)

def fl_off(v, L, H):
    j = v // L
    return j * H * L + (v - j * L)

def fl_span(v, seg, L, cols, causal, keys):
    lo, hi = 0, cols
    if seg > 1:
        lo = (v // L) * L; hi = lo + L
    elif causal:
        if keys: lo = v
        else: hi = min(cols, v + 1)
    return lo, hi

def fl_warp_span(first, rows, seg, L, cols, causal, keys):
    last = min(first + 15, rows - 1)
    alo, bhi = fl_span(first, seg, L, cols, causal, keys)
    blo, ahi = fl_span(last, seg, L, cols, causal, keys)
    return alo, ahi, blo, bhi

def where(b, L, H, N, seg):
    tiles = 1 if seg > 1 else (L + 127) // 128
    tile = b % tiles; b //= tiles
    h = b % H; n = (b // H) * seg
    lv = min(seg, N - n) * L if seg > 1 else L
    return n, h, tile, lv

def blocks(N, H, L, seg):
    return H * ((N + seg - 1) // seg) if seg > 1 else N * H * ((L + 127) // 128)

def pack(x, N, L, C, H, DP):
    dh = C // H
    p = np.zeros((N, H, L, DP))
    p[:, :, :, :dh] = x.reshape(N, L, H, dh).transpose(0, 2, 1, 3)
    return p.reshape(-1, DP)

def tile(pk, head_row, v0, R, valid, L, H, DP):
    t = np.zeros((R, DP))
    for r in range(R):
        if r < valid:
            t[r] = pk[head_row + fl_off(v0 + r, L, H)]
    return t

def run(N, Lq, Lk, C, H, causal, rng):
    dh = C // H
    DP = next(d for d in [16, 32, 48, 64, 80, 128, 160] if dh <= d)
    BT = 64 if DP <= 80 else 32
    SB = 32
    seg = 128 // Lq if (not causal and Lq == Lk and 2 * Lq <= 128 and N > 1) else 1
    scale = 1 / math.sqrt(dh); scale2 = scale * LOG2E
    q = rng.standard_normal((N, Lq, C)); k = rng.standard_normal((N, Lk, C)); v = rng.standard_normal((N, Lk, C))
    dout = rng.standard_normal((N, Lq, C))
    qp, kp, vp, dp_ = (pack(x, N, l, C, H, DP) for x, l in ((q, Lq), (k, Lk), (v, Lk), (dout, Lq)))
    y = np.full((N * Lq, C), np.nan); lse = np.full(N * H * Lq, np.nan)
    # forward
    for b in range(blocks(N, H, Lq, seg)):
        n, h, til, lv = where(b, Lq, H, N, seg)
        q0 = til * 128
        lq = lv if seg > 1 else Lq; lk = lv if seg > 1 else Lk
        Q = tile(qp, (n * H + h) * Lq, q0, 128, min(128, lq - q0), Lq, H, DP)
        kend = min(lk, q0 + 128) if causal else lk
        ntiles = (kend + BT - 1) // BT
        for warp in range(8):
            r0 = warp * 16
            if not (q0 + r0 < lq): continue
            alo, ahi, blo, bhi = fl_warp_span(q0 + r0, lq, seg, Lq, lk, causal, False)
            m = np.full(16, -np.inf); l = np.zeros(16); o = np.zeros((16, DP))
            rows = q0 + r0 + np.arange(16)
            spans = [fl_span(r, seg, Lq, lk, causal, False) for r in rows]
            for it in range(ntiles):
                k0 = it * BT
                if not (k0 < ahi and k0 + BT > alo): continue
                K = tile(kp, (n * H + h) * Lk, k0, BT, min(BT, lk - k0), Lk, H, DP)
                V = tile(vp, (n * H + h) * Lk, k0, BT, min(BT, lk - k0), Lk, H, DP)
                s = Q[r0:r0 + 16] @ K.T
                edge = k0 < blo or k0 + BT > bhi
                if edge:
                    for i in range(16):
                        lo, hi = spans[i]
                        for c in range(BT):
                            if k0 + c < lo or k0 + c >= hi: s[i, c] = -np.inf
                mx = np.maximum(m, s.max(1) * scale2)
                base = np.where(mx == -np.inf, 0, mx)
                alpha = np.exp2(m - base); m = mx; l = l * alpha
                p = np.exp2(s * scale2 - base[:, None]); l = l + p.sum(1)
                o = o * alpha[:, None] + p @ V
            for i in range(16):
                r = rows[i]
                if r >= lq: continue
                inv = 1 / l[i] if l[i] > 0 else 0
                y[n * Lq + r, h * dh:(h + 1) * dh] = (o[i] * inv)[:dh]
                lse[(n * H + h) * Lq + fl_off(r, Lq, H)] = m[i] + math.log2(l[i])
    # reference (per head; packed sequences attend only themselves: they are separate sequences)
    qh = q.reshape(N, Lq, H, dh).transpose(0, 2, 1, 3); kh = k.reshape(N, Lk, H, dh).transpose(0, 2, 1, 3)
    vh = v.reshape(N, Lk, H, dh).transpose(0, 2, 1, 3); doh = dout.reshape(N, Lq, H, dh).transpose(0, 2, 1, 3)
    S = qh @ kh.transpose(0, 1, 3, 2) * scale
    if causal: S = np.where(np.tril(np.ones((Lq, Lk))) > 0, S, -np.inf)
    P = np.exp(S - S.max(-1, keepdims=True)); P /= P.sum(-1, keepdims=True)
    O = P @ vh
    dV = P.transpose(0, 1, 3, 2) @ doh
    dP = doh @ vh.transpose(0, 1, 3, 2)
    Dr = (doh * O).sum(-1, keepdims=True)
    dS = P * (dP - Dr)
    dQ = dS @ kh * scale; dK = dS.transpose(0, 1, 3, 2) @ qh * scale
    tok = lambda x, L: x.transpose(0, 2, 1, 3).reshape(N * L, C)
    errs = {"y": np.abs(y - tok(O, Lq)).max()}
    # backward: D from packed dout and o (16-bit o emulated as exact)
    opk = pack(y.reshape(N, Lq, C), N, Lq, C, H, DP)
    dd = (dp_ * opk).sum(1)  # rows (N,H,Lq) order
    dq = np.full((N * Lq, C), np.nan)
    for b in range(blocks(N, H, Lq, seg)):
        n, h, til, lv = where(b, Lq, H, N, seg)
        q0 = til * 128
        lq = lv if seg > 1 else Lq; lk = lv if seg > 1 else Lk
        Q = tile(qp, (n * H + h) * Lq, q0, 128, min(128, lq - q0), Lq, H, DP)
        DO = tile(dp_, (n * H + h) * Lq, q0, 128, min(128, lq - q0), Lq, H, DP)
        kend = min(lk, q0 + 128) if causal else lk
        ntiles = (kend + BT - 1) // BT
        lhead = (n * H + h) * Lq
        for warp in range(8):
            r0 = warp * 16
            if not (q0 + r0 < lq): continue
            alo, ahi, blo, bhi = fl_warp_span(q0 + r0, lq, seg, Lq, lk, causal, False)
            rows = q0 + r0 + np.arange(16)
            spans = [fl_span(r, seg, Lq, lk, causal, False) for r in rows]
            lr = np.array([lse[lhead + fl_off(r, Lq, H)] if r < lq else 0 for r in rows])
            dr = np.array([dd[lhead + fl_off(r, Lq, H)] if r < lq else 0 for r in rows])
            acc = np.zeros((16, DP))
            for it in range(ntiles):
                k0 = it * BT
                K = tile(kp, (n * H + h) * Lk, k0, BT, min(BT, lk - k0), Lk, H, DP)
                V = tile(vp, (n * H + h) * Lk, k0, BT, min(BT, lk - k0), Lk, H, DP)
                for sb in range(0, BT, SB):
                    c0 = k0 + sb
                    if c0 >= ahi or c0 + SB <= alo: continue
                    edge = c0 < blo or c0 + SB > bhi
                    s = Q[r0:r0 + 16] @ K[sb:sb + SB].T; dpp = DO[r0:r0 + 16] @ V[sb:sb + SB].T
                    p = np.exp2(s * scale2 - lr[:, None])
                    if edge:
                        for i in range(16):
                            lo, hi = spans[i]
                            for c in range(SB):
                                if c0 + c < lo or c0 + c >= hi: p[i, c] = 0
                    ds = p * (dpp - dr[:, None])
                    acc += ds @ K[sb:sb + SB]
            for i in range(16):
                r = rows[i]
                if r < lq: dq[n * Lq + r, h * dh:(h + 1) * dh] = (acc[i] * scale)[:dh]
    errs["dq"] = np.abs(dq - tok(dQ, Lq)).max()
    dk = np.full((N * Lk, C), np.nan); dv = np.full((N * Lk, C), np.nan)
    for b in range(blocks(N, H, Lk, seg)):
        n, h, til, lv = where(b, Lk, H, N, seg)
        k0 = til * 128
        lq = lv if seg > 1 else Lq; lk = lv if seg > 1 else Lk
        K = tile(kp, (n * H + h) * Lk, k0, 128, min(128, lk - k0), Lk, H, DP)
        V = tile(vp, (n * H + h) * Lk, k0, 128, min(128, lk - k0), Lk, H, DP)
        qstart = (k0 // BT) * BT if causal else 0
        ntiles = (lq - qstart + BT - 1) // BT
        lhead = (n * H + h) * Lq
        for warp in range(8):
            r0 = warp * 16
            if not (k0 + r0 < lk): continue
            alo, ahi, blo, bhi = fl_warp_span(k0 + r0, lk, seg, Lk, lq, causal, True)
            keys = k0 + r0 + np.arange(16)
            spans = [fl_span(r, seg, Lk, lq, causal, True) for r in keys]
            ak = np.zeros((16, DP)); av = np.zeros((16, DP))
            for it in range(ntiles):
                q0 = qstart + it * BT
                nv = min(BT, lq - q0)
                Q = tile(qp, (n * H + h) * Lq, q0, BT, nv, Lq, H, DP)
                DO = tile(dp_, (n * H + h) * Lq, q0, BT, nv, Lq, H, DP)
                sl = np.array([lse[lhead + fl_off(q0 + i, Lq, H)] if i < nv else 0 for i in range(BT)])
                sd = np.array([dd[lhead + fl_off(q0 + i, Lq, H)] if i < nv else 0 for i in range(BT)])
                for sb in range(0, BT, SB):
                    c0 = q0 + sb
                    if c0 >= ahi or c0 + SB <= alo: continue
                    edge = c0 < blo or c0 + SB > bhi
                    s = K[r0:r0 + 16] @ Q[sb:sb + SB].T
                    p = np.exp2(s * scale2 - sl[None, sb:sb + SB])
                    if edge:
                        for i in range(16):
                            lo, hi = spans[i]
                            for c in range(SB):
                                if c0 + c < lo or c0 + c >= hi: p[i, c] = 0
                    av += p @ DO[sb:sb + SB]
                    dpp = V[r0:r0 + 16] @ DO[sb:sb + SB].T
                    ds = p * (dpp - sd[None, sb:sb + SB])
                    ak += ds @ Q[sb:sb + SB]
            for i in range(16):
                r = keys[i]
                if r < lk:
                    dk[n * Lk + r, h * dh:(h + 1) * dh] = (ak[i] * scale)[:dh]
                    dv[n * Lk + r, h * dh:(h + 1) * dh] = av[i][:dh]
    errs["dk"] = np.abs(dk - tok(dK, Lk)).max(); errs["dv"] = np.abs(dv - tok(dV, Lk)).max()
    return seg, errs

rng = np.random.default_rng(1)
cases = [(12, 25, 25, 16, 2, False), (50, 3, 3, 16, 8, False), (3, 64, 64, 32, 2, False), (2, 130, 200, 12, 2, False),
         (2, 300, 300, 64, 2, True), (2, 77, 77, 48, 2, True), (5, 40, 40, 320, 2, False), (1, 200, 200, 320, 2, False),
         (7, 25, 25, 80, 1, False), (1, 25, 25, 16, 2, False), (3, 33, 33, 64, 1, False)]
bad = 0
for c in cases:
    seg, e = run(*c, rng)
    ok = all(np.isfinite(x) and x < 1e-9 for x in e.values())
    bad += not ok
    print(c, "seg", seg, {k: "%.1e" % x for k, x in e.items()}, "ok" if ok else "BAD")
sys.exit(1 if bad else 0)

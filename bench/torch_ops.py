#!/usr/bin/env python3
"""Time trainer/cuda's ops against PyTorch on the same shapes and card.

Usage: python3 bench/torch_ops.py GO_OPS.json > table.md

GO_OPS.json is written by the gpu-tagged test TestTimings (PIPELINE_CUDA_TIMINGS=FILE);
each entry names an op, a pass, a precision (fp32: strict float32, TF32 off for matmul and
cuDNN; tf32: TF32 on for both) and the shape. This script builds the PyTorch equivalent of
each entry, times it the same way (CUDA events, warm-up, median of repeats), and prints a
markdown table: ours vs PyTorch, and GEMM TFLOP/s against the card's measured peak.
Used only by benchmarks.
"""
import json
import sys

import torch
import torch.nn.functional as F

dev = torch.device("cuda")
gen = torch.Generator(device=dev).manual_seed(1)


def randn(*shape):
    return torch.randn(*shape, device=dev, generator=gen, dtype=torch.float32)


def set_prec(prec):
    on = prec == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def median_ms(fn, warm=3, reps=15):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def case_gemm(sh, pas):
    a, b = randn(sh["m"], sh["k"]), randn(sh["k"], sh["n"])
    return lambda: torch.matmul(a, b)


def case_conv2d(sh, pas):
    n, c, h, w, k = sh["n"], sh["c"], sh["h"], sh["w"], sh["k"]
    s, p = sh["stride"], sh["pad"]
    x, wt, b = randn(n, c, h, w), randn(k, c, sh["kh"], sh["kw"]), randn(k)
    y = F.conv2d(x, wt, b, s, p)
    dy = randn(*y.shape)
    if pas == "fwd":
        return lambda: F.conv2d(x, wt, b, s, p)
    mask = [True, False, False] if pas == "bwd_data" else [False, True, True]
    return lambda: torch.ops.aten.convolution_backward(dy, x, wt, [k], [s, s], [p, p], [1, 1], False, [0, 0], 1, mask)


def case_tconv(sh, pas):
    # What a PyTorch model does: Conv3d with a (3, 1, 1) kernel on (B, C, T, H, W).
    b, t, c, k, p = sh["b"], sh["t"], sh["c"], sh["k"], sh["p"]
    x, wt, bias = randn(b, c, t, p, 1), randn(k, c, 3, 1, 1), randn(k)
    dy = randn(b, k, t, p, 1)
    if pas == "fwd":
        return lambda: F.conv3d(x, wt, bias, 1, (1, 0, 0))
    mask = [True, False, False] if pas == "bwd_data" else [False, True, True]
    return lambda: torch.ops.aten.convolution_backward(dy, x, wt, [k], [1, 1, 1], [1, 0, 0], [1, 1, 1], False, [0, 0, 0], 1, mask)


def case_groupnorm(sh, pas):
    n, c, p, g = sh["n"], sh["c"], sh["p"], sh["groups"]
    x, gamma, beta = randn(n, c, p), randn(c), randn(c)
    if pas == "fwd":
        return lambda: F.group_norm(x, g, gamma, beta, 1e-5)
    _, mean, rstd = torch.ops.aten.native_group_norm(x, gamma, beta, n, c, p, g, 1e-5)
    dy = randn(n, c, p)
    return lambda: torch.ops.aten.native_group_norm_backward(dy, x, mean, rstd, gamma, n, c, p, g, [True, True, True])


def case_silu(sh, pas):
    x, dy = randn(sh["n"]), randn(sh["n"])
    if pas == "fwd":
        return lambda: F.silu(x)
    return lambda: torch.ops.aten.silu_backward(dy, x)


def case_silu100(sh, pas):
    # 100 small launches back to back: launch overhead, host time included
    x = randn(sh["n"])

    def run():
        for _ in range(sh["calls"]):
            F.silu(x)

    return run


def case_linear(sh, pas):
    x, w, b = randn(sh["n"], sh["in"]), randn(sh["out"], sh["in"]), randn(sh["out"])
    dy = randn(sh["n"], sh["out"])
    if pas == "fwd":
        return lambda: F.linear(x, w, b)

    def bwd():
        dy @ w
        dy.t() @ x
        dy.sum(0)

    return bwd


def case_attention(sh, pas):
    b, l, d = sh["b"], sh["l"], sh["d"]
    q, k, v = (randn(b, 1, l, d).requires_grad_(pas != "fwd") for _ in range(3))
    if pas == "fwd":
        return lambda: F.scaled_dot_product_attention(q, k, v)
    o = F.scaled_dot_product_attention(q, k, v)
    do = randn(*o.shape)
    return lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True)


def case_attention_nn(sh, pas):
    # The same function as nn.AttentionForward on the packed (B*T, 3C, P) projection,
    # written as a PyTorch model would: views, permutes and SDPA.
    b, t, c, p, h = sh["b"], sh["t"], sh["c"], sh["p"], sh["heads"]
    dh = c // h
    qkv = randn(b * t, 3 * c, p).requires_grad_(pas != "fwd")

    def fwd():
        if not sh["temporal"]:
            x = qkv.view(b * t, 3, h, dh, p).permute(1, 0, 2, 4, 3)  # (3, F, H, P, dh)
            o = F.scaled_dot_product_attention(x[0], x[1], x[2])      # (F, H, P, dh)
            return o.permute(0, 1, 3, 2).reshape(b * t, c, p)
        x = qkv.view(b, t, 3, h, dh, p).permute(2, 0, 5, 3, 1, 4).reshape(3, b * p, h, t, dh)
        o = F.scaled_dot_product_attention(x[0], x[1], x[2])          # (B*P, H, T, dh)
        return o.view(b, p, h, t, dh).permute(0, 3, 2, 4, 1).reshape(b * t, c, p)

    if pas == "fwd":
        return fwd
    out = fwd()
    do = randn(*out.shape)
    return lambda: torch.autograd.grad(out, qkv, do, retain_graph=True)


def case_upsample(sh, pas):
    n, c, h, w = sh["n"], sh["c"], sh["h"], sh["w"]
    x, dy = randn(n, c, h, w), randn(n, c, 2 * h, 2 * w)
    if pas == "fwd":
        return lambda: F.interpolate(x, scale_factor=2, mode="nearest")
    return lambda: torch.ops.aten.upsample_nearest2d_backward(dy, [2 * h, 2 * w], [n, c, h, w])


def case_mse(sh, pas):
    b, t, e, skip = sh["b"], sh["t"], sh["e"], sh["skip"]
    p, q = randn(b, t, e).requires_grad_(pas != "fwd"), randn(b, t, e)
    if pas == "fwd":
        return lambda: F.mse_loss(p[:, skip:], q[:, skip:])
    loss = F.mse_loss(p[:, skip:], q[:, skip:])
    return lambda: torch.autograd.grad(loss, p, retain_graph=True)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def fmt_shape(sh):
    return " ".join(f"{k}={v}" for k, v in sh.items())


def main():
    ours = json.load(open(sys.argv[1]))
    props = torch.cuda.get_device_properties(0)
    print(f"card: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    print()
    print("| op | pass | prec | ours: impl | shape | ours ms | torch ms | ours/torch | ours TFLOP/s | torch ms, cudnn.benchmark |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|")
    torch_ms, bench_ms = {}, {}
    rows = []
    for c in ours:
        set_prec(c["prec"])
        key = (c["op"], c["pass"], c["prec"], json.dumps(c["shape"], sort_keys=True))
        if key not in torch_ms:  # one PyTorch timing serves both of our conv implementations
            with torch.no_grad() if c["pass"] == "fwd" else torch.enable_grad():
                fn = CASES[c["op"]](c["shape"], c["pass"])
                torch_ms[key] = median_ms(fn)
                del fn
            torch.cuda.empty_cache()
        tms = torch_ms[key]
        if c["op"] in ("conv2d", "tconv") and key not in bench_ms:
            # PyTorch with cudnn.benchmark (times cuDNN's algorithms, as our cuDNN path does)
            torch.backends.cudnn.benchmark = True
            with torch.no_grad() if c["pass"] == "fwd" else torch.enable_grad():
                fn = CASES[c["op"]](c["shape"], c["pass"])
                bench_ms[key] = median_ms(fn)
                del fn
            torch.backends.cudnn.benchmark = False
            torch.cuda.empty_cache()
        bms = f"{bench_ms[key]:.3f}" if key in bench_ms else ""
        tf = f"{c['flops'] / c['ms'] / 1e9:.1f}" if c["flops"] else ""
        rows.append((c, tms))
        print(f"| {c['op']} | {c['pass']} | {c['prec']} | {c.get('impl', '')} | {fmt_shape(c['shape'])} | {c['ms']:.3f} | "
              f"{tms:.3f} | {c['ms'] / tms:.2f} | {tf} | {bms} |", flush=True)
    # Measured peak: the best matrix product the card does through PyTorch at each precision.
    print()
    print("| GEMM 8192³ | ours TFLOP/s | torch TFLOP/s (measured peak) | ours / peak |")
    print("|---|---:|---:|---:|")
    m = 8192
    a, b = randn(m, m), randn(m, m)
    flops = 2 * m ** 3
    for c, _ in rows:
        if c["op"] != "gemm":
            continue
        set_prec(c["prec"])
        peak = flops / median_ms(lambda: torch.matmul(a, b)) / 1e9
        ours = flops / c["ms"] / 1e9
        print(f"| {c['prec']} | {ours:.1f} | {peak:.1f} | {ours / peak:.2f} |")
    ab, bb = a.bfloat16(), b.bfloat16()
    bf = flops / median_ms(lambda: torch.matmul(ab, bb)) / 1e9
    print(f"| bf16 (torch only, for scale) | | {bf:.1f} | |")


if __name__ == "__main__":
    main()

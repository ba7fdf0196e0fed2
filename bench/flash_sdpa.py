#!/usr/bin/env python3
"""Time PyTorch's scaled_dot_product_attention, bfloat16, forward and
forward+backward (gradients of q, k and v), on the attention shapes of the
full-size SD-1.5 pseudo-3D UNet step (B=1, T=25, 64x64 latents): the same
list as flashStepShapes in trainer/gpu/flash_gpu_test.go, whose
TestFlashBench times our fused attention. Layout as diffusers': (N, L, C)
tokens viewed as (N, heads, L, C/heads). CUDA events, warm-up, median of 10.
Used only by benchmarks.

Usage: python3 bench/flash_sdpa.py
"""
import torch
import torch.nn.functional as F

SHAPES = [  # name, layers per step, N, Lq, Lk, C, heads
    ("self 4096 d40", 5, 25, 4096, 4096, 320, 8),
    ("cross 4096x77 d40", 5, 25, 4096, 77, 320, 8),
    ("temporal 25 d40", 5, 4096, 25, 25, 320, 8),
    ("self 1024 d80", 5, 25, 1024, 1024, 640, 8),
    ("cross 1024x77 d80", 5, 25, 1024, 77, 640, 8),
    ("temporal 25 d80", 5, 1024, 25, 25, 640, 8),
    ("self 256 d160", 5, 25, 256, 256, 1280, 8),
    ("cross 256x77 d160", 5, 25, 256, 77, 1280, 8),
    ("temporal 25 d160", 5, 256, 25, 25, 1280, 8),
    ("self 64 d160", 1, 25, 64, 64, 1280, 8),
    ("cross 64x77 d160", 1, 25, 64, 77, 1280, 8),
    ("temporal 25 d160 (mid)", 1, 64, 25, 25, 1280, 8),
]


def heads(x, h):
    n, l, c = x.shape
    return x.view(n, l, h, c // h).transpose(1, 2)


def timed(fn, reps=10):
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return sorted(ts)[len(ts) // 2]


def main():
    dev = torch.device("cuda")
    torch.manual_seed(0)
    print(f"PyTorch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    print("| attention (PyTorch SDPA bf16) | layers | fwd ms | fwd+bwd ms | step total fwd+bwd ms |")
    print("|---|---:|---:|---:|---:|")
    total = 0.0
    for name, count, n, lq, lk, c, h in SHAPES:
        q = torch.randn(n, lq, c, device=dev, dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(n, lk, c, device=dev, dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn(n, lk, c, device=dev, dtype=torch.bfloat16, requires_grad=True)
        dout = torch.randn(n, lq, c, device=dev, dtype=torch.bfloat16)

        def fwd():
            with torch.no_grad():
                F.scaled_dot_product_attention(heads(q, h), heads(k, h), heads(v, h))

        def fwd_bwd():
            o = F.scaled_dot_product_attention(heads(q, h), heads(k, h), heads(v, h))
            o.transpose(1, 2).reshape(n, lq, c).backward(dout)

        f, fb = timed(fwd), timed(fwd_bwd)
        total += count * fb
        print(f"| {name} | {count} | {f:.3f} | {fb:.3f} | {count * fb:.1f} |")
    print(f"| all attention layers of one step | | | | {total:.1f} |")


if __name__ == "__main__":
    main()

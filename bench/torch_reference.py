#!/usr/bin/env python3
"""The video model's training step in PyTorch (eager, or --compile), for benchmarks only.

Usage: python3 bench/torch_reference.py SPEC.json --precision fp32|tf32 [--steps 50 --warmup 10] [--compile]

SPEC.json is the network description the Go side writes (trainer/gpu.Spec, via
`gpubench -spec`): the same layers over the same values, with the same parameter names,
shapes and initialisations as model.Describe, so the parameter count and the trainable set
are those of the Go model by construction (checked below). The step is what a PyTorch user
would write: parameters as nn.Parameter (the backbone with requires_grad=False), cuDNN
convolutions, F.group_norm, F.scaled_dot_product_attention, MSE over frames 2..T,
clip_grad_norm_ to 1, torch.optim.AdamW (its default CUDA implementation) with the moments
on the GPU. Prints one JSON line: median step time of --steps after --warmup, samples/s,
peak GPU memory (max_memory_allocated), at the requested precision: fp32 is strict float32
(TF32 off for matmul and cuDNN), tf32 turns allow_tf32 on for both. --compile wraps the
forward pass and the loss in torch.compile (default mode; the warm-up steps include the
compilation); the optimizer step stays eager.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F


def build_params(spec, dev, gen):
    params = {}
    for p in spec["params"]:
        shape, init = p["Shape"], p["Init"]
        if init == "zeros":
            t = torch.zeros(shape)
        elif init == "ones":
            t = torch.ones(shape)
        elif init == "identity":  # (K, C, 3): centre tap is the identity
            t = torch.zeros(shape)
            k = min(shape[0], shape[1])
            t[torch.arange(k), torch.arange(k), 1] = 1
        else:
            bound = 1 / math.sqrt(max(1, p["FanIn"]))
            t = (torch.rand(shape, generator=gen) * 2 - 1) * bound
        trainable = p["Name"] in spec["trainable_set"]
        params[p["Name"]] = torch.nn.Parameter(t.to(dev), requires_grad=trainable)
    return params


def timestep_embedding(t, dim):
    half = dim // 2
    f = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    a = t[:, None] * f[None]
    out = torch.cat([torch.cos(a), torch.sin(a)], dim=1)
    if dim % 2:
        out = F.pad(out, (0, 1))
    return out


def attention(qkv, B, T, heads, temporal):
    N, c3, H, W = qkv.shape
    C = c3 // 3
    dh = C // heads
    P = H * W
    x = qkv.reshape(B, T, 3, heads, dh, P)
    if temporal:  # sequences: each pixel of each clip, tokens: frames
        x = x.permute(2, 0, 5, 3, 1, 4)  # (3, B, P, heads, T, dh)
    else:  # sequences: frames, tokens: pixels
        x = x.permute(2, 0, 1, 3, 5, 4)  # (3, B, T, heads, P, dh)
    q, k, v = x[0], x[1], x[2]
    o = F.scaled_dot_product_attention(q, k, v)
    if temporal:
        o = o.permute(0, 3, 2, 4, 1)  # (B, T, heads, dh, P)
    else:
        o = o.permute(0, 1, 2, 4, 3)  # (B, T, heads, dh, P)
    return o.reshape(N, C, H, W)


def forward(spec, params, x, t):
    B, T = spec["batch"], spec["frames"]
    vals = [None] * len(spec["values"])
    vals[spec["input"]], vals[spec["timesteps"]] = x, t
    for l in spec["layers"]:
        kind = l["Kind"]
        inp = [vals[i] for i in l["In"]]
        ps = [params[n] for n in (l["Params"] or [])]
        if kind == "timestep_embedding":
            y = timestep_embedding(inp[0], spec["values"][l["Out"]]["Channels"])
        elif kind == "linear":
            y = F.linear(inp[0], ps[0], ps[1])
        elif kind == "silu":
            y = F.silu(inp[0])
        elif kind == "conv2d":
            y = F.conv2d(inp[0], ps[0], ps[1], stride=l["Stride"], padding=l["Pad"])
        elif kind == "temporal_conv":
            n, c, h, w = inp[0].shape
            v = inp[0].reshape(B, T, c, h, w).permute(0, 2, 1, 3, 4)  # (B, C, T, H, W)
            y = F.conv3d(v, ps[0][:, :, :, None, None], ps[1], padding=(1, 0, 0))
            y = y.permute(0, 2, 1, 3, 4).reshape(n, -1, h, w)
        elif kind == "group_norm":
            y = F.group_norm(inp[0], l["Groups"], ps[0], ps[1], eps=l["Eps"])
        elif kind == "attention":
            y = attention(inp[0], B, T, l["Heads"], l["Temporal"])
        elif kind == "upsample2x":
            y = F.interpolate(inp[0], scale_factor=2, mode="nearest")
        elif kind == "add":
            y = inp[0] + inp[1]
        elif kind == "add_channel":
            y = inp[0] + inp[1][:, :, None, None]
        elif kind == "concat":
            y = torch.cat([inp[0], inp[1]], dim=1)
        else:
            raise ValueError(f"unknown layer kind {kind}")
        vals[l["Out"]] = y
    return vals[spec["output"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("--precision", choices=["fp32", "tf32"], default="fp32")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--compile", action="store_true", help="torch.compile the forward pass and loss")
    a = ap.parse_args()

    on = a.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cudnn.benchmark = True

    spec = json.load(open(a.spec))
    spec["trainable_set"] = set(spec["trainable"])
    dev = torch.device("cuda")
    gen = torch.Generator().manual_seed(1)
    params = build_params(spec, dev, gen)
    total = sum(p.numel() for p in params.values())
    trainable = [params[n] for n in spec["trainable"]]
    ntrain = sum(p.numel() for p in trainable)
    assert total == spec["param_count"], (total, spec["param_count"])
    assert ntrain == spec["trainable_count"], (ntrain, spec["trainable_count"])
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)

    cfg = spec["config"]
    B, T, H, W, skip = spec["batch"], spec["frames"], spec["height"], spec["width"], spec["loss_skip"]
    N = B * T
    g = torch.Generator(device=dev).manual_seed(2)
    batches = []
    for _ in range(3):
        x = torch.randn(N, cfg["in_channels"], H, W, device=dev, generator=g)
        tgt = torch.randn(N, cfg["out_channels"], H, W, device=dev, generator=g)
        ts = torch.randint(0, 1000, (B,), device=dev, generator=g).float().repeat_interleave(T)
        batches.append((x, ts, tgt))

    def fwd_loss(x, ts, tgt):
        pred = forward(spec, params, x, ts)
        d = (pred - tgt).reshape(B, T, -1)[:, skip:]
        return (d * d).mean()

    if a.compile:
        # the forward and the loss as one compiled graph (default mode; its
        # backward is compiled by AOTAutograd); clipping and AdamW stay eager
        fwd_loss = torch.compile(fwd_loss)

    def step(i):
        x, ts, tgt = batches[i % len(batches)]
        loss = fwd_loss(x, ts, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for i in range(a.warmup):
        step(i)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    loss = None
    for i in range(a.steps):
        t0 = time.perf_counter()
        loss = step(i)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(times)
    opt_bytes = sum(s.numel() * s.element_size() for st in opt.state.values() for s in st.values() if torch.is_tensor(s))
    print(json.dumps({
        "impl": "torch", "variant": "compile" if a.compile else "eager",
        "device": torch.cuda.get_device_name(), "precision": a.precision, "optimizer": "device",
        "batch": B, "frames": T, "res": H, "params": total, "trainable": ntrain,
        "step_ms_median": med, "step_ms_min": min(times), "samples_per_s": B / (med / 1e3),
        "peak_alloc_mib": torch.cuda.max_memory_allocated() / 2**20,
        "reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
        "optimizer_device_mib": opt_bytes / 2**20,
        "final_loss": float(loss.detach()), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()

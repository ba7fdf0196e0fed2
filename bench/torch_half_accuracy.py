"""PyTorch's own half-precision error on the recipe's tiny pseudo-3D UNet: the yardstick of
trainer/gpu's TestSDT16Accuracy (same model, inputs, target and loss).

  python3 bench/torch_half_accuracy.py DIFFUSERS_SRC UNET_DIR CASES

UNET_DIR is trainer/weights/testdata/sd-tiny-pseudo3d/unet (the recipe's tensor names: every Conv2d but
proj_in/proj_out is X.spatial_conv + X.temporal_conv, a kernel-3 Conv1d over frames; each transformer
block gains norm_temporal + attn_temporal after its cross-attention; resnet norms and conv_norm_out
normalise over channels-of-the-group x frames x H x W jointly), CASES
trainer/model/testdata/sd-golden/sd-tiny-pseudo3d-cases.safetensors (one clip of 4 frames). The target
is sin(0.37 i), the loss the MSE over frames 1.. (the first frame of the clip is the condition).

Runs one training step's forward and backward in float32 (TF32 off), then under autocast in bfloat16
and float16 with float32 master weights ("autocast"), and as the recipe trains (frozen backbone cast to
the half type, temporal parameters float32, autocast: "recipe"). float16 backward uses a loss scale of
2^16, as GradScaler starts. Prints, for each, the relative L2 error against float32 of the output, the
loss, and the temporal gradients (worst tensor, all together).
"""
import math
import sys
import types

sys.path.insert(0, sys.argv[1] + "/src")
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from diffusers.models.resnet import ResnetBlock2D

UNET, CASES = sys.argv[2], sys.argv[3]
T = 4  # frames per clip


class SpatioTemporalConv(nn.Module):
    """A 2-D convolution per frame, then a kernel-3 convolution over the frames of each pixel."""

    def __init__(self, conv):
        super().__init__()
        self.spatial_conv = conv
        c = conv.out_channels
        self.temporal_conv = nn.Conv1d(c, c, 3, padding=1)

    def forward(self, x):
        x = self.spatial_conv(x)
        n, c, h, w = x.shape
        y = x.reshape(n // T, T, c, h * w).permute(0, 3, 2, 1).reshape(-1, c, T)
        y = self.temporal_conv(y)
        return y.reshape(n // T, h * w, c, T).permute(0, 3, 2, 1).reshape(n, c, h, w)


class ClipGroupNorm(nn.GroupNorm):
    """GroupNorm whose statistics span the clip's frames (the recipe's 5-D norm)."""

    def forward(self, x):
        n, c, h, w = x.shape
        y = x.reshape(n // T, T, c, h, w).transpose(1, 2)
        y = F.group_norm(y, self.num_groups, self.weight, self.bias, self.eps)
        return y.transpose(1, 2).reshape(n, c, h, w)


def clip_norm(gn):
    return ClipGroupNorm(gn.num_groups, gn.num_channels, gn.eps, gn.affine)


def block_forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                  timestep=None, cross_attention_kwargs=None, class_labels=None, added_cond_kwargs=None, **kwargs):
    h = self.attn1(self.norm1(hidden_states)) + hidden_states
    h = self.attn2(self.norm2(h), encoder_hidden_states=encoder_hidden_states) + h
    n, l, c = h.shape
    z = h.reshape(n // T, T, l, c).transpose(1, 2).reshape(-1, T, c)  # sequences over frames
    z = self.attn_temporal(self.norm_temporal(z)) + z
    h = z.reshape(n // T, l, T, c).transpose(1, 2).reshape(n, l, c)
    return self.ff(self.norm3(h)) + h


def pseudo3d(unet):
    for mod in list(unet.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, nn.Conv2d) and name not in ("proj_in", "proj_out"):
                setattr(mod, name, SpatioTemporalConv(child))
    for mod in unet.modules():
        if isinstance(mod, ResnetBlock2D):
            mod.norm1, mod.norm2 = clip_norm(mod.norm1), clip_norm(mod.norm2)
        if isinstance(mod, BasicTransformerBlock):
            c = mod.norm1.normalized_shape[0]
            mod.norm_temporal = nn.LayerNorm(c)
            mod.attn_temporal = Attention(query_dim=c, heads=8, dim_head=c // 8)
            mod.forward = types.MethodType(block_forward, mod)
    unet.conv_norm_out = clip_norm(unet.conv_norm_out)
    return unet


def load():
    cfg = UNet2DConditionModel.load_config(UNET)
    unet = pseudo3d(UNet2DConditionModel.from_config(cfg))
    sd = {k: v.float() for k, v in load_file(UNET + "/diffusion_pytorch_model.safetensors").items()}
    unet.load_state_dict(sd, strict=True)
    return unet.cuda()


def step(dtype, recipe):
    unet = load()
    unet.requires_grad_(False)
    train = [(n, p) for n, p in unet.named_parameters() if "temporal" in n]
    if recipe:
        unet.to(dtype)
        for _, p in train:
            p.data = p.data.float()
    for _, p in train:
        p.requires_grad_(True)
    cases = load_file(CASES)
    x, ctx = cases["p3d.sample"].cuda(), cases["p3d.context"].cuda()
    ts = cases["p3d.timestep"].long().cuda()
    out_shape = (x.shape[0], unet.config.out_channels, x.shape[2], x.shape[3])
    n = math.prod(out_shape)
    target = torch.sin(torch.arange(n, dtype=torch.float64) * 0.37).float().reshape(out_shape).cuda()
    if dtype is None:
        out = unet(x, ts, ctx).sample
    else:
        if recipe:
            x, ctx = x.to(dtype), ctx.to(dtype)
        with torch.autocast("cuda", dtype=dtype):
            out = unet(x, ts, ctx).sample
    out = out.float()
    loss = F.mse_loss(out[1:], target[1:])
    scale = 2.0 ** 16 if dtype == torch.float16 else 1.0
    (loss * scale).backward()
    grads = {name: (p.grad.double() / scale) for name, p in train}
    return out.detach().double(), loss.item(), grads


def rel(a, b):
    return float((a - b).norm() / b.norm())


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    out32, loss32, g32 = step(None, False)
    gnorm = math.sqrt(sum(float(g.pow(2).sum()) for g in g32.values()))
    print(f"PyTorch {torch.__version__} float32: loss {loss32:.7g}, {len(g32)} temporal gradients, total norm {gnorm:.6g}")
    rows = []
    for label, dtype, recipe in (("autocast bf16", torch.bfloat16, False), ("autocast fp16", torch.float16, False),
                                 ("recipe bf16 (backbone cast)", torch.bfloat16, True),
                                 ("recipe fp16 (backbone cast)", torch.float16, True)):
        out, loss, g = step(dtype, recipe)
        errs = {k: rel(g[k], g32[k]) for k in g32}
        worst = max(errs, key=errs.get)
        num = sum(float((g[k] - g32[k]).pow(2).sum()) for k in g32)
        den = sum(float(g32[k].pow(2).sum()) for k in g32)
        rows.append(f"| PyTorch {label} | {rel(out, out32):.3g} | {abs(loss - loss32) / abs(loss32):.3g} | "
                    f"{errs[worst]:.3g} | {math.sqrt(num / den):.3g} |")
        print(rows[-1], "worst:", worst)
    print("PyTorch half precisions vs its float32 step, sd-tiny-pseudo3d (joint norms), B=1 T=4 16x16; gradients: "
          "relative L2, worst tensor / all temporal together")
    print("| mode | output | loss | grad worst | grad all |\n|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

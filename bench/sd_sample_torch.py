"""The SD family's sampling loop in PyTorch, for timing beside ours (issue 17): the seed recipe's pseudo-3D
inflation of diffusers' UNet2DConditionModel (a kernel-3 temporal conv after every conv but the transformers'
proj_in/proj_out, temporal attention in every transformer block), DDIM over all frames jointly with
classifier-free guidance (both halves in one batch, mask 0 and the still's latent as the masked image of
every frame), then the VAE decoder in batches. float16 weights and activations, SDPA attention.

  python3 bench/sd_sample_torch.py DIFFUSERS_SRC MODEL_DIR [VIDEO_UNET_SAFETENSORS]
      env: FRAMES (120), STEPS (50), GUIDANCE (7.5), DECODE_BATCH (8)
Loads our exported video UNet (the recipe's tensor names) when given, so both loops run the same weights.
Prints one JSON line.
"""
import json, os, sys, time, types

dsrc, model = sys.argv[1], sys.argv[2]
video_unet = sys.argv[3] if len(sys.argv) > 3 else ""
sys.path.insert(0, os.path.join(dsrc, "src"))
import torch
import torch.nn as nn
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

T = int(os.environ.get("FRAMES", "120"))
STEPS = int(os.environ.get("STEPS", "50"))
G = float(os.environ.get("GUIDANCE", "7.5"))
DB = int(os.environ.get("DECODE_BATCH", "8"))
dt = torch.float16
torch.backends.cudnn.benchmark = True


class TemporalConv(nn.Module):
    """the spatial conv, then a kernel-3 conv over frames (identity at initialisation)."""

    def __init__(self, conv, frames):
        super().__init__()
        self.spatial_conv, self.frames = conv, frames
        c = conv.out_channels
        self.temporal_conv = nn.Conv1d(c, c, 3, padding=1)
        nn.init.dirac_(self.temporal_conv.weight)
        nn.init.zeros_(self.temporal_conv.bias)

    def forward(self, x):
        x = self.spatial_conv(x)
        bt, c, h, w = x.shape
        b = bt // self.frames
        y = x.view(b, self.frames, c, h, w).permute(0, 3, 4, 2, 1).reshape(b * h * w, c, self.frames)
        y = self.temporal_conv(y)
        return y.view(b, h, w, c, self.frames).permute(0, 4, 3, 1, 2).reshape(bt, c, h, w)


def transformer_block(self, hidden_states, attention_mask=None, encoder_hidden_states=None,
                      encoder_attention_mask=None, timestep=None, cross_attention_kwargs=None,
                      class_labels=None, added_cond_kwargs=None):
    h = self.attn1(self.norm1(hidden_states)) + hidden_states
    h = self.attn2(self.norm2(h), encoder_hidden_states=encoder_hidden_states) + h
    bt, l, c = h.shape
    b = bt // self.frames
    z = h.view(b, self.frames, l, c).permute(0, 2, 1, 3).reshape(b * l, self.frames, c)
    z = self.attn_temporal(self.norm_temporal(z)) + z
    h = z.view(b, l, self.frames, c).permute(0, 2, 1, 3).reshape(bt, l, c)
    return self.ff(self.norm3(h)) + h


def pseudo3d(unet, frames):
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.attention_processor import Attention
    for mod in list(unet.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, nn.Conv2d) and name not in ("proj_in", "proj_out"):
                setattr(mod, name, TemporalConv(child, frames))
    for mod in unet.modules():
        if isinstance(mod, BasicTransformerBlock):
            c = mod.norm1.normalized_shape[0]
            mod.frames = frames
            mod.norm_temporal = nn.LayerNorm(c)
            mod.attn_temporal = Attention(query_dim=c, heads=8, dim_head=c // 8)
            mod.forward = types.MethodType(transformer_block, mod)
    return unet


t_load = time.time()
unet = pseudo3d(UNet2DConditionModel.from_pretrained(os.path.join(model, "unet")), T)
loaded = None
if video_unet:
    from safetensors.torch import load_file
    res = unet.load_state_dict(load_file(video_unet), strict=False)
    loaded = dict(missing=len(res.missing_keys), unexpected=len(res.unexpected_keys))
unet = unet.to("cuda", dt).eval()
vae = AutoencoderKL.from_pretrained(os.path.join(model, "vae")).to("cuda", dt).eval()
text = CLIPTextModel.from_pretrained(os.path.join(model, "text_encoder")).to("cuda", dt).eval()
tok = CLIPTokenizer(os.path.join(model, "tokenizer", "vocab.json"), os.path.join(model, "tokenizer", "merges.txt"))
sched = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                      clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
load_s = time.time() - t_load
C, h = 4, unet.config.sample_size
sf = vae.config.scaling_factor
g = torch.Generator("cuda").manual_seed(0)

with torch.no_grad():
    ids = tok(["", "a timelapse of clouds over a landscape"], padding="max_length", max_length=77, truncation=True,
              return_tensors="pt").input_ids.cuda()
    emb = text(ids).last_hidden_state  # (2, 77, 768): uncond, text
    ctx = torch.cat([emb[0:1].expand(T, -1, -1), emb[1:2].expand(T, -1, -1)])
    still = torch.randn(1, 3, h * 8, h * 8, device="cuda", dtype=dt, generator=g).clamp(-1, 1)
    cond = vae.encode(still).latent_dist.mean * sf
    extra = torch.cat([torch.zeros(2 * T, 1, h, h, device="cuda", dtype=dt), cond.expand(2 * T, -1, -1, -1)], dim=1)

    def eps_of(x, t):
        inp = torch.cat([torch.cat([x, x]), extra], dim=1)
        out = unet(inp, t, encoder_hidden_states=ctx).sample
        un, te = out.chunk(2)
        return un + G * (te - un)

    x = torch.randn(T, C, h, h, device="cuda", dtype=dt, generator=g)
    sched.set_timesteps(STEPS)
    eps_of(x, sched.timesteps[0])  # warm-up (cuDNN's algorithm search), not timed
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    for t in sched.timesteps:
        x = sched.step(eps_of(x, t), t, x).prev_sample
    torch.cuda.synchronize()
    loop_s = time.time() - t0
    unet_peak = torch.cuda.max_memory_allocated()
    x[0] = cond[0]
    vae.decode(x[0:DB] / sf)  # warm-up (cuDNN's algorithm search), not timed
    torch.cuda.synchronize()
    t1 = time.time()
    frames = [vae.decode(x[i:i + DB] / sf).sample.float().clamp(-1, 1).cpu() for i in range(0, T, DB)]
    torch.cuda.synchronize()
    decode_s = time.time() - t1
print(json.dumps(dict(impl="pytorch " + torch.__version__ + " diffusers UNet2DConditionModel pseudo-3D, float16, SDPA",
                      frames=T, steps=STEPS, guidance=G, unet_batch=2 * T, latent=h, load_s=round(load_s, 1),
                      loop_s=round(loop_s, 2), step_ms=round(1000 * loop_s / STEPS, 1), decode_s=round(decode_s, 2),
                      decode_frames_per_s=round(T / decode_s, 1), peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2),
                      unet_loop_peak_gib=round(unet_peak / 2**30, 2), video_unet_loaded=loaded,
                      finite=bool(torch.isfinite(torch.stack([f.mean() for f in frames])).all()))), flush=True)

"""PyTorch reference for the SD-size VAE on the GPU (trainer/gpu TestSDVAEFullSizeVsTorch).

  PYTHONPATH=DIFFUSERS_SRC/src python3 bench/vae_ref.py OUT

Builds diffusers' AutoencoderKL with the SD-1.5 VAE config and seeded random (default-initialised)
weights rounded to float16, saves it as OUT/vae (diffusers folder, float32 safetensors), and writes
OUT/cases.safetensors: a 2x3x512x512 image, PyTorch's encoder moments (mean and log-variance before
clamping) and the decoder's output of the float32 mean, in float32 (TF32 off) and in float16.
"""
import os, sys

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

VAE_SD = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
              up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
              layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=512)


def main(out):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    vae = AutoencoderKL(**VAE_SD).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.copy_(p.half().float())
    os.makedirs(out, exist_ok=True)
    vae.save_pretrained(os.path.join(out, "vae"), safe_serialization=True)
    g = torch.Generator().manual_seed(1)
    img = torch.rand(2, 3, 512, 512, generator=g) * 2 - 1
    vae = vae.cuda()
    x = img.cuda()
    with torch.no_grad():
        m32 = vae.encode(x).latent_dist.parameters.float()
        z = m32[:, :4].contiguous()
        d32 = vae.decode(z).sample.float()
        vae = vae.half()
        m16 = vae.encode(x.half()).latent_dist.parameters.float()
        d16 = vae.decode(z.half()).sample.float()
    cases = {"image": img, "latent": z, "moments32": m32, "decoded32": d32, "moments16": m16, "decoded16": d16}
    save_file({k: v.detach().cpu().contiguous() for k, v in cases.items()}, os.path.join(out, "cases.safetensors"))
    rel = lambda a, b: float((a - b).norm() / b.norm())
    print({"torch_fp16_vs_fp32_moments": rel(m16, m32), "torch_fp16_vs_fp32_decoded": rel(d16, d32)}, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

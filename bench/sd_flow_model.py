"""A full-size SD-1.5 inpainting model with random weights, in the diffusers folder layout, for the GPU
flow (bench/sd_flow_gpu.sh): unet/ (9 input channels), vae/, text_encoder/ (transformers' CLIPTextModel at
SD-1.5's sizes), tokenizer/ (CLIP's real vocabulary, copied from the tiny fixture), scheduler/ (SD-1.5's
scaled_linear schedule). Weights are the libraries' own random initialisation (seeded), stored in float16.

  python3 bench/sd_flow_model.py OUT DIFFUSERS_SRC TOKENIZER_DIR
      env TINY=1: the same architecture at tiny widths (a dry run of the scripts)
"""
import json, os, shutil, sys, time

out, dsrc, tokdir = sys.argv[1:4]
sys.path.insert(0, os.path.join(dsrc, "src"))
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

UNET = dict(sample_size=64, in_channels=9, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768,
            attention_head_dim=8, norm_num_groups=32)
VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
           layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=512)
TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
SCHEDULER = {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False, "skip_prk_steps": True,
             "steps_offset": 1, "clip_sample": False, "trained_betas": None}

if os.environ.get("TINY") == "1":
    UNET.update(block_out_channels=(32, 32, 64, 64), norm_num_groups=8, cross_attention_dim=32, attention_head_dim=2)
    VAE.update(block_out_channels=(16, 16, 32, 32), norm_num_groups=4)
    TEXT.update(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, projection_dim=32)

t0 = time.time()
torch.manual_seed(0)
dev = "cuda" if torch.cuda.is_available() else "cpu"
with torch.device(dev):
    parts = {"unet": UNet2DConditionModel(**UNET), "vae": AutoencoderKL(**VAE),
             "text_encoder": CLIPTextModel(CLIPTextConfig(**TEXT))}
counts = {}
for name, m in parts.items():
    counts[name] = sum(p.numel() for p in m.parameters())
    m.half().save_pretrained(os.path.join(out, name), safe_serialization=True)
os.makedirs(os.path.join(out, "tokenizer"), exist_ok=True)
for f in ("vocab.json", "merges.txt"):
    shutil.copy(os.path.join(tokdir, f), os.path.join(out, "tokenizer", f))
os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
with open(os.path.join(out, "scheduler", "scheduler_config.json"), "w") as f:
    json.dump(SCHEDULER, f, indent=2)
print(json.dumps({"model": out, "params": counts, "seconds": round(time.time() - t0, 1)}), flush=True)

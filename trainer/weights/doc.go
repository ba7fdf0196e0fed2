// Package weights reads Stable Diffusion weight files in every layout users
// bring, read-only: diffusers folders (unet/, vae/, text_encoder/ with
// safetensors, .fp16.safetensors or .bin weights), single original-layout
// (CompVis/LDM) checkpoints as .safetensors or .ckpt, and the recipe's
// pseudo-3D UNet folder. Tensors are F32, F16 or BF16 and are exposed under
// diffusers' state-dict names, read on demand from the file (never a second
// copy of the file in memory). Pickle files (.ckpt, .bin) are interpreted by a
// reader that knows only the opcodes and globals of a PyTorch state dict; it
// executes nothing and refuses every other global by name. Configs missing
// from a file are inferred from its tensors and every tensor's shape is
// checked against them. It also writes a model as a diffusers folder of
// safetensors (Convert).
package weights

// Package model owns the pseudo-3D UNet of the trainer: its configuration
// (Config, presets Tiny and Timelapse), its parameters (named float32 host
// tensors with stable names that become safetensors keys, and their seeded
// initialisation), a backend-neutral description of the network (Describe:
// an ordered list of layers over numbered values, which the Gorgonia builder
// here and the GPU executor both walk), and the Gorgonia graph builders for
// training (BuildTrain) and sampling (BuildForward).
//
// The backbone is a 2D UNet (ResBlocks with GroupNorm, SiLU, 3x3 conv and a
// timestep embedding; strided-conv downsampling, nearest upsampling with
// skips; spatial self-attention at the configured levels). The video model
// adds, after each ResBlock conv, a temporal conv initialised to identity,
// and after each spatial attention a temporal attention whose output
// projection is initialised to zero, so at initialisation the video model
// equals the backbone applied frame by frame. Every parameter of the video
// part has "temporal" in its name (IsTemporal).
package model

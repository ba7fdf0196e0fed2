// Package model owns the networks of the trainer: its own pseudo-3D UNet
// (Config, presets Tiny and Timelapse) and Stable Diffusion's UNet (from a
// diffusers config.json: DescribeUNet, LoadUNet, Inflate, UNet.WriteFolder),
// VAE and CLIP text encoder; their parameters (named float32 host tensors
// with stable names that become safetensors keys, and their seeded
// initialisation); a backend-neutral description of each network (Net: an
// ordered list of layers over numbered values, frames, vectors and token
// sequences, which the interpreter and the Gorgonia builder here and the
// GPU executor all walk); and the Gorgonia graph builders for training
// (BuildTrain, BuildNetTrain) and sampling (BuildForward, BuildNetForward).
//
// The own backbone is a 2D UNet (ResBlocks with GroupNorm, SiLU, 3x3 conv
// and a timestep embedding; strided-conv downsampling, nearest upsampling
// with skips; spatial self-attention at the configured levels). The video
// model adds, after each ResBlock conv, a temporal conv initialised to
// identity, and after each spatial attention a temporal attention whose
// output projection is initialised to zero, so at initialisation the video
// model equals the backbone applied frame by frame.
//
// The SD UNet keeps diffusers' state-dict names, so a diffusers folder (or
// any layout trainer/weights reads) loads by name. Its pseudo-3D inflation
// follows the seed recipe's layout and names: every Conv2d but the
// transformers' proj_in/proj_out becomes X.spatial_conv + X.temporal_conv,
// and every transformer block gains norm_temporal and attn_temporal after
// the cross-attention; temporal convs start as the identity and
// attn_temporal.to_out.0 at zero (the recipe did not zero it), so with
// per-frame group norms the video model equals the backbone frame by
// frame. GroupNormJoint reproduces the recipe's code, whose resnet norms
// and conv_norm_out normalise over the frames of a clip together.
//
// Every parameter of a video part has "temporal" in its name (IsTemporal):
// the trainable set of the train stage.
package model

// Package diffusion owns the denoising-diffusion math of the trainer,
// independent of the network: DDPM noise schedules (linear and cosine
// betas), forward noising (QSample), the conditioning input layout (noisy
// clip ++ clean first frame ++ mask channel) and the DDIM sampler, which
// drives any "predict epsilon" function for any step count and any number
// of frames.
//
// Clips are float32 (B, T, C, H, W) in [-1, 1], row-major; the model sees
// them as B*T frames.
package diffusion

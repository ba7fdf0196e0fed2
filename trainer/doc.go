// Package trainer owns training: the Loop (steps with hooks that fire every N
// steps: log, validate, checkpoint, sample), and the three jobs built on it —
// Pretrain (the spatial backbone as an image denoiser on single frames,
// conditioned on another frame of the same video), Train (the video model,
// only the temporal parameters trained, backbone frozen, exact resume from
// checkpoints) and Sample (a still image turned into a timelapse). The model,
// the ops and the diffusion schedule live in trainer/model, trainer/nn and
// trainer/diffusion; checkpoints, the optimizer, metrics and media in the
// sub-packages of the same names. A session steps through a backend (the
// Gorgonia CPU graph or trainer/gpu's step, backend.go), updates with AdamW
// on the host or on the GPU (optimizer.go), and builds step k+1's example
// on another goroutine while step k runs (feed.go). The session only wires
// these parts; each is built from explicit options. A checkpoint records the
// run's result-changing settings (RunSettings, resume.go): a resume with other
// ones is refused, while cadence, workers, device and steps may change. Every
// record goes to the one *slog.Logger of the options, with fixed messages and
// typed fields. The enums of the options (Device, OptimizerState) live here.
package trainer

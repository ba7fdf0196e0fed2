package trainer

import (
	"fmt"
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/gpu"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// SDEncoderOptions configures NewSDEncoder.
type SDEncoderOptions struct {
	// Device: DeviceCUDA runs the VAE encoder and the text encoder on the
	// GPU (trainer/gpu's SD executor), DeviceAuto there when one is usable,
	// DeviceCPU (or "") on the interpreter in float32.
	Device Device
	// Precision of the GPU passes ("" : tf32); the CPU computes in fp32.
	Precision Precision
	Log       *slog.Logger
}

// SDEncoder encodes square frames of one size with an SD model's VAE
// encoder (the diagonal Gaussian's mean and log-variance, before the
// scaling factor) and token ids with its CLIP text encoder
// (last_hidden_state), on the CPU or one GPU. Not safe for concurrent use.
type SDEncoder struct {
	vae  *model.VAE
	text *model.CLIPText
	size int
	// Device and Precision are what the encoder computes with (resolved).
	Device    Device
	Precision Precision

	log   *slog.Logger
	dev   *cuda.Device
	sdo   gpu.SDOptions
	nets  map[int]*gpu.SDNet // VAE encoders by batch size
	texts map[int]*gpu.SDNet // text encoders by prompt count
}

// NewSDEncoder prepares the encoders for frames of size x size.
func NewSDEncoder(vae *model.VAE, text *model.CLIPText, size int, o SDEncoderOptions) (*SDEncoder, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	dev, err := o.Device.resolve(o.Log)
	if err != nil {
		return nil, err
	}
	e := &SDEncoder{vae: vae, text: text, size: size, Device: dev, Precision: PrecisionFP32, log: o.Log,
		nets: map[int]*gpu.SDNet{}, texts: map[int]*gpu.SDNet{}}
	if dev != DeviceCUDA {
		return e, nil
	}
	if o.Precision == "" {
		o.Precision = PrecisionTF32
	}
	tf32, sdo, err := o.Precision.sdGPU()
	if err != nil {
		return nil, err
	}
	if e.dev, err = cuda.Open(0, cuda.Options{TF32: tf32, Logger: o.Log}); err != nil {
		return nil, err
	}
	e.sdo, e.Precision = sdo, o.Precision
	o.Log.Info("encoding on the GPU", slog.String("device", e.dev.String()), slog.String("precision", string(o.Precision)))
	return e, nil
}

// net returns the executor of n for batch b (cached).
func (e *SDEncoder) net(cache map[int]*gpu.SDNet, n *model.Net, p *model.Params, b, h, w int) (*gpu.SDNet, error) {
	if s := cache[b]; s != nil {
		return s, nil
	}
	s, err := gpu.NewSDNet(e.dev, n, p, b, 1, h, w, e.sdo)
	if err != nil {
		return nil, err
	}
	cache[b] = s
	return s, nil
}

// EncodeImages encodes n images (n, 3, size, size) in [-1, 1].
func (e *SDEncoder) EncodeImages(images []float32, n int) (mean, logvar []float32, err error) {
	if e.dev == nil {
		return e.vae.Encode(images, n, e.size, e.size)
	}
	// a short last batch is padded to the largest batch seen: one executor
	// (one copy of the weights) for a whole run
	b := n
	for k := range e.nets {
		b = max(b, k)
	}
	if b > n {
		images = append(images[:len(images):len(images)], make([]float32, (b-n)*len(images)/n)...)
	}
	s, err := e.net(e.nets, e.vae.Encoder, e.vae.Params, b, e.size, e.size)
	if err != nil {
		return nil, nil, fmt.Errorf("VAE encoder on the GPU: %w", err)
	}
	out, err := s.Forward(model.Inputs{Input: images})
	if err != nil {
		return nil, nil, fmt.Errorf("VAE encoder on the GPU: %w", err)
	}
	mean, logvar = e.vae.SplitMoments(out[e.vae.Encoder.Output], n, e.size, e.size)
	return mean, logvar, nil
}

// EncodeText encodes token id sequences of the text encoder's length.
func (e *SDEncoder) EncodeText(ids [][]int) ([]float32, error) {
	if e.dev == nil {
		return e.text.Encode(ids)
	}
	in, err := e.text.IDs(ids)
	if err != nil {
		return nil, err
	}
	s, err := e.net(e.texts, e.text.Net, e.text.Params, len(ids), 1, 1)
	if err != nil {
		return nil, fmt.Errorf("text encoder on the GPU: %w", err)
	}
	out, err := s.Forward(model.Inputs{Input: in})
	if err != nil {
		return nil, fmt.Errorf("text encoder on the GPU: %w", err)
	}
	return out[e.text.Net.Output], nil
}

// MemStats reports the GPU allocator's counters (zero on the CPU).
func (e *SDEncoder) MemStats() cuda.MemStats {
	if e.dev == nil {
		return cuda.MemStats{}
	}
	return e.dev.MemStats()
}

// Close frees the executors and the device.
func (e *SDEncoder) Close() {
	for _, c := range []map[int]*gpu.SDNet{e.nets, e.texts} {
		for b, s := range c {
			s.Close()
			delete(c, b)
		}
	}
	if e.dev != nil {
		logGPUMemory(e.log, e.dev, "latents")
		e.dev.Close()
		e.dev = nil
	}
}

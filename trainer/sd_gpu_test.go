//go:build gpu

package trainer

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// On the GPU, the SD family's sampling (the video UNet over both guidance
// halves, then the VAE decoder in batches) gives the CPU's latents and
// frames to float32 rounding on the tiny model after one training step.
func TestSampleSDOnGPU(t *testing.T) {
	if ok, why := cuda.Available(); !ok {
		t.Skip("no usable GPU: " + why)
	}
	latents := writeSDLatents(t, 2, 4)
	o := sdTrainOpts(t, latents, 1)
	if _, err := TrainSD(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	sm, err := openSD(sdTiny, sdLoad{Text: true, VAE: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadSDTemporal(sm, filepath.Join(o.OutDir, TemporalFile)); err != nil {
		t.Fatal(err)
	}
	ds, err := shards.OpenLatents(latents)
	if err != nil {
		t.Fatal(err)
	}
	cond, text, _, err := latentStill(ds)
	ds.Close()
	if err != nil {
		t.Fatal(err)
	}
	emb, err := sm.embed("")
	if err != nil {
		t.Fatal(err)
	}
	run := sdSampling{Frames: 12, Steps: 4, Guidance: 5, Eta: 0.5, Seed: 2, Cond: cond, Text: text, Uncond: emb, H: 8, W: 8}
	cpu := &sdDenoise{sm: sm}
	want, err := cpu.run(context.Background(), run)
	cpu.close()
	if err != nil {
		t.Fatal(err)
	}
	g, err := openSDGPU(PrecisionFP32, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	dev := &sdDenoise{sm: sm, build: g.unet(sm.UNet)}
	got, err := dev.run(context.Background(), run)
	dev.close()
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(got, want); e > 1e-3 {
		t.Errorf("GPU latents differ from the CPU's: rel err %.3g", e)
	}
	dec, closeDec, err := g.decoder(sm.VAE, 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDec()
	gi, err := decodeLatentsWith(sm.VAE, dec, want, 12, 8, 8, 5)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := decodeLatents(sm.VAE, want, 12, 8, 8, 5)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(gi, ci); e > 1e-3 {
		t.Errorf("GPU VAE decode differs from the CPU's: rel err %.3g", e)
	}
}

// On the GPU (trainer/gpu's SD executor), TrainSD follows the CPU run on
// the tiny model with the optimizer inside the step, AdamW on the host
// (overlapped with the backward pass and the next forward, the default) and
// on the device: the same losses and temporal weights (their EMA) after 4
// steps to float32 rounding,
// with validation and a preview on the GPU.
func TestTrainSDOnGPU(t *testing.T) {
	if ok, why := cuda.Available(); !ok {
		t.Skip("no usable GPU: " + why)
	}
	latents := writeSDLatents(t, 3, 5)
	cpu := sdTrainOpts(t, latents, 4)
	// an EMA (what validation and the weights file hold): the host
	// optimizer's update overlaps the next forward, the EMA folds each
	// step's weights behind it
	cpu.EMADecay = 0.9
	rc, err := TrainSD(context.Background(), cpu)
	if err != nil {
		t.Fatal(err)
	}
	a := readTensors(t, filepath.Join(cpu.OutDir, TemporalFile))
	for _, state := range []OptimizerState{OptimizerHost, OptimizerDevice} {
		gpuO := sdTrainOpts(t, latents, 4)
		gpuO.Device, gpuO.SampleEvery, gpuO.OptimizerState, gpuO.EMADecay = DeviceCUDA, 4, state, cpu.EMADecay
		rg, err := TrainSD(context.Background(), gpuO)
		if err != nil {
			t.Fatalf("optimizer_state %s: %v", state, err)
		}
		if d := math.Abs(rg.ValLoss-rc.ValLoss) / rc.ValLoss; d > 1e-3 {
			t.Errorf("optimizer_state %s: validation loss GPU %v, CPU %v", state, rg.ValLoss, rc.ValLoss)
		}
		b := readTensors(t, filepath.Join(gpuO.OutDir, TemporalFile))
		for name, ta := range a.Tensors {
			if e := relErr(b.Tensors[name].Data, ta.Data); e > 1e-3 {
				t.Errorf("optimizer_state %s: %s: GPU vs CPU rel err %.3g", state, name, e)
			}
		}
		if _, err := os.Stat(filepath.Join(gpuO.OutDir, PreviewDir, "step-000004.gif")); err != nil {
			t.Error(err)
		}
	}
}

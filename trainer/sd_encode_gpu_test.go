//go:build gpu

package trainer

import (
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/tokenizer"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// The latents stage's GPU encoder (VAE encoder and CLIP text encoder on
// trainer/gpu's SD executor) gives the CPU interpreter's moments and text
// embeddings on the tiny model: to 1e-4 relative (L2) in fp32, where only
// the order of float32 sums differs; to 1e-2 in tf32 and fp16, whose
// operands keep 10 mantissa bits (2^-11 relative rounding, summed over a
// few dozen layers), and 3e-2 in bf16 (7 bits, 8x coarser). Measured on an
// H200 (2026-12-02): fp32 1.1e-6, tf32 7.4e-5, fp16 1.3e-3, bf16 1.24e-2
// (moments); text embeddings 2.6e-7 / 3.9e-4 / 3.9e-4 / 5.2e-3. A short last batch (padded
// on the GPU) gives the same values as a full one.
func TestSDEncoderGPUMatchesCPU(t *testing.T) {
	if ok, why := cuda.Available(); !ok {
		t.Skip("no usable GPU: " + why)
	}
	m, err := weights.Open(sdTiny)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	vae, err := model.OpenVAE(m)
	if err != nil {
		t.Fatal(err)
	}
	te, err := model.OpenCLIPText(m)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(sdTiny + "/tokenizer")
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 5, 64
	rng := rand.New(rand.NewPCG(4, 2))
	imgs := make([]float32, n*3*size*size)
	for i := range imgs {
		imgs[i] = float32(rng.Float64()*2 - 1)
	}
	var ids [][]int
	for _, p := range []string{"a timelapse of clouds over a landscape", "", "stars turning over a desert at night"} {
		t0, _ := tok.Encode(p)
		ids = append(ids, t0)
	}
	cpu, err := NewSDEncoder(vae, te, size, SDEncoderOptions{Device: DeviceCPU})
	if err != nil {
		t.Fatal(err)
	}
	wantM, wantV, err := cpu.EncodeImages(imgs, n)
	if err != nil {
		t.Fatal(err)
	}
	wantT, err := cpu.EncodeText(ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p   Precision
		tol float64
	}{{PrecisionFP32, 1e-4}, {PrecisionTF32, 1e-2}, {PrecisionBF16, 3e-2}, {PrecisionFP16, 1e-2}} {
		t.Run(string(c.p), func(t *testing.T) {
			g, err := NewSDEncoder(vae, te, size, SDEncoderOptions{Device: DeviceCUDA, Precision: c.p})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if g.Device != DeviceCUDA || g.Precision != c.p {
				t.Fatalf("encoder on %s in %s", g.Device, g.Precision)
			}
			// a batch of 3, then the short batch of 2 (padded to 3)
			m1, v1, err := g.EncodeImages(imgs[:3*3*size*size], 3)
			if err != nil {
				t.Fatal(err)
			}
			m2, v2, err := g.EncodeImages(imgs[3*3*size*size:], 2)
			if err != nil {
				t.Fatal(err)
			}
			gotT, err := g.EncodeText(ids)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range []struct {
				what      string
				got, want []float32
			}{{"mean", append(m1, m2...), wantM}, {"logvar", append(v1, v2...), wantV}, {"text embedding", gotT, wantT}} {
				if len(x.got) != len(x.want) {
					t.Fatalf("%s: %d values, want %d", x.what, len(x.got), len(x.want))
				}
				e := relErr(x.got, x.want)
				t.Logf("%s %s: rel err %.3g", c.p, x.what, e)
				if !(e <= c.tol) {
					t.Errorf("%s %s: rel err %.3g > %.0e", c.p, x.what, e, c.tol)
				}
			}
			if len(g.nets) != 1 {
				t.Errorf("%d VAE executors for batches 3 and 2, want 1", len(g.nets))
			}
		})
	}
}

package shards

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func openTestLatents(t *testing.T) *LatentDataset {
	t.Helper()
	dir := t.TempDir()
	writeLatents(t, dir, DtypeFloat32, latentVideos(rand.New(rand.NewPCG(5, 6)), 3, 4, 24, 10))
	d, err := OpenLatents(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func drain(t *testing.T, l *LatentLoader, n int) []*LatentBatch {
	t.Helper()
	var out []*LatentBatch
	for len(out) < n {
		b, err := l.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestLatentLoaderWindowsAndMeans: with Mean set, each clip is its video's
// consecutive stored means times the scale, with the video's text; windows
// never cross videos; one epoch visits every window once.
func TestLatentLoaderWindowsAndMeans(t *testing.T) {
	d := openTestLatents(t)
	l, err := NewLatentLoader(d, LatentLoaderOptions{FramesLength: 3, Batch: 2, Seed: 1, Mean: true, Epochs: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// videos of 4, 5 and 6 frames: 2 + 3 + 4 windows of 3
	if l.Windows() != 9 {
		t.Fatalf("%d windows", l.Windows())
	}
	seen := map[Window]bool{}
	mean, lv, text := make([]float32, 24), make([]float32, 24), make([]float32, 10)
	for _, b := range drain(t, l, 100) {
		if b.T != 3 || b.C != 4 || b.H != 2 || b.W != 3 || b.Tokens != 5 || b.D != 2 {
			t.Fatalf("batch shape %+v", b)
		}
		for i := 0; i < b.B; i++ {
			w := Window{b.Videos[i], b.Starts[i]}
			if seen[w] {
				t.Fatalf("window %v twice in one epoch", w)
			}
			seen[w] = true
			d.Text(text, w.Video)
			if !slices.Equal(b.Text[i*10:(i+1)*10], text) {
				t.Fatalf("clip %v: text differs", w)
			}
			for k := 0; k < 3; k++ {
				if err := d.Latent(mean, lv, w.Video, w.Start+k); err != nil {
					t.Fatalf("window %v crosses its video: %v", w, err)
				}
				got := b.Latents[(i*3+k)*24 : (i*3+k+1)*24]
				for j := range mean {
					if math.Abs(float64(got[j])-float64(mean[j])*0.18215) > 1e-6 {
						t.Fatalf("clip %v frame %d: %v, want mean*0.18215 = %v", w, k, got[j], mean[j]*0.18215)
					}
				}
			}
		}
	}
	if len(seen) != 9 {
		t.Fatalf("epoch visited %d of 9 windows", len(seen))
	}
}

// TestLatentLoaderSamples: samples are N(mean, exp(logvar)) times the
// scale (standardised, they have mean 0 and variance 1), the same for the
// same seed, and a loader started at step k yields the stream's tail.
func TestLatentLoaderSamples(t *testing.T) {
	d := openTestLatents(t)
	opt := LatentLoaderOptions{FramesLength: 2, Batch: 3, Seed: 7, Sampling: SamplingRandom, Scale: 2}
	l, err := NewLatentLoader(d, opt)
	if err != nil {
		t.Fatal(err)
	}
	a := drain(t, l, 40)
	l.Close()
	var s, s2, n float64
	mean, lv := make([]float32, 24), make([]float32, 24)
	for _, b := range a {
		for i := 0; i < b.B; i++ {
			for k := 0; k < 2; k++ {
				d.Latent(mean, lv, b.Videos[i], b.Starts[i]+k)
				got := b.Latents[(i*2+k)*24 : (i*2+k+1)*24]
				for j := range mean {
					z := (float64(got[j])/2 - float64(mean[j])) / math.Exp(0.5*float64(lv[j]))
					s += z
					s2 += z * z
					n++
				}
			}
		}
	}
	if m, v := s/n, s2/n-(s/n)*(s/n); math.Abs(m) > 0.05 || math.Abs(v-1) > 0.06 {
		t.Errorf("standardised samples: mean %.3f variance %.3f over %.0f values", m, v, n)
	}
	opt.StartStep = 25
	l2, err := NewLatentLoader(d, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	tail := drain(t, l2, 15)
	for i, b := range tail {
		want := a[25+i]
		if b.Step != want.Step || !slices.Equal(b.Videos, want.Videos) || !slices.Equal(b.Latents, want.Latents) {
			t.Fatalf("step %d differs after a start at 25", b.Step)
		}
	}
	if _, err := NewLatentLoader(d, LatentLoaderOptions{FramesLength: 7}); err == nil {
		t.Error("a window longer than every video accepted")
	}
}

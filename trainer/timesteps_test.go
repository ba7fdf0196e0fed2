package trainer

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/diffusion"
)

func TestTimestepSamplerUniformIsIntN(t *testing.T) {
	s, _ := diffusion.NewSchedule(NoiseSchedule, NoiseScheduleSteps)
	ts, err := newTimestepSampler(TimestepsUniform, 0, 0, s)
	if err != nil || ts != nil {
		t.Fatalf("uniform: sampler %v, err %v; want nil, nil", ts, err)
	}
	a, b := rand.New(rand.NewPCG(1, 2)), rand.New(rand.NewPCG(1, 2))
	for i := range 1000 {
		if x, y := ts.draw(a, 1000), b.IntN(1000); x != y {
			t.Fatalf("draw %d: %d, IntN %d: uniform sampling changed the stream", i, x, y)
		}
	}
}

// The min_snr draws follow min(SNR, gamma)/(SNR+1): the empirical share of
// every range of timesteps matches the weights' share, and the ends are
// rare.
func TestTimestepSamplerMinSNR(t *testing.T) {
	s, _ := diffusion.NewSchedule(NoiseSchedule, NoiseScheduleSteps)
	ts, err := newTimestepSampler(TimestepsMinSNR, 5, 0, s)
	if err != nil {
		t.Fatal(err)
	}
	w := make([]float64, s.Steps())
	var sum float64
	for i := range w {
		snr := s.AlphaBar[i] / (1 - s.AlphaBar[i])
		w[i] = math.Min(snr, 5) / (snr + 1)
		sum += w[i]
	}
	const n = 200000
	counts := make([]int, s.Steps())
	rnd := rand.New(rand.NewPCG(3, 4))
	for range n {
		counts[ts.draw(rnd, s.Steps())]++
	}
	for _, r := range [][2]int{{0, 10}, {10, 50}, {50, 150}, {150, 300}, {300, 500}, {500, 1000}} {
		var want float64
		got := 0
		for i := r[0]; i < r[1]; i++ {
			want += w[i] / sum
			got += counts[i]
		}
		share := float64(got) / n
		if math.Abs(share-want) > 4*math.Sqrt(want*(1-want)/n)+1e-4 {
			t.Errorf("t in [%d, %d): drawn %.4f of the time, weight share %.4f", r[0], r[1], share, want)
		}
		if (r[0] == 0 || r[0] == 500) && share > 0.05 {
			t.Errorf("t in [%d, %d): drawn %.4f of the time, want rare", r[0], r[1], share)
		}
	}
	if _, err := newTimestepSampler("lognormal", 0, 0, s); err == nil {
		t.Error("unknown sampling accepted")
	}
	if _, err := newTimestepSampler(TimestepsMinSNR, -1, 0, s); err == nil {
		t.Error("negative gamma accepted")
	}
}

// Training with min_snr draws other timesteps but validates on the same
// uniform set: the baseline (step 0) validation loss is the uniform run's
// bit for bit, the trained weights differ, and the sampling is in the run
// settings (a uniform checkpoint is not resumed as min_snr).
func TestTrainMinSNRKeepsValidation(t *testing.T) {
	uni := trainOpts(t, 4)
	uni.OutDir = filepath.Join(t.TempDir(), "uniform")
	ru, err := Train(context.Background(), uni)
	if err != nil {
		t.Fatal(err)
	}
	ms := uni
	ms.OutDir = filepath.Join(t.TempDir(), "minsnr")
	ms.TimestepSampling = TimestepsMinSNR
	rm, err := Train(context.Background(), ms)
	if err != nil {
		t.Fatal(err)
	}
	if ru.BaselineValLoss != rm.BaselineValLoss || ru.BaselineValLoss == 0 {
		t.Errorf("baseline val loss: uniform %v, min_snr %v; want the same, non-zero", ru.BaselineValLoss, rm.BaselineValLoss)
	}
	a := readTensors(t, filepath.Join(uni.OutDir, TemporalFile))
	b := readTensors(t, filepath.Join(ms.OutDir, TemporalFile))
	same := true
	for name, x := range a.Tensors {
		for i, v := range x.Data {
			if b.Tensors[name].Data[i] != v {
				same = false
			}
		}
	}
	if same {
		t.Error("min_snr trained the same weights as uniform")
	}
	if b.Metadata[MetaRunHash] == a.Metadata[MetaRunHash] {
		t.Error("min_snr has the uniform run's settings hash")
	}
	res := ms
	res.OutDir, res.Resume, res.Steps = uni.OutDir, true, 6
	var sc *SettingsChangedError
	if _, err := Train(context.Background(), res); !errors.As(err, &sc) {
		t.Errorf("resuming a uniform run as min_snr: %v, want a SettingsChangedError", err)
	}
}

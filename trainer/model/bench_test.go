package model

import (
	"math/rand/v2"
	"syscall"
	"testing"
)

// maxRSSMB is the peak resident memory of the process so far.
func maxRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}

// cpuSeconds is the user+system CPU time of the process: on a shared
// machine it is steadier than wall time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// BenchmarkTrainStep times one forward+backward step of video training
// (temporal parameters trainable) and of backbone pretraining, and reports
// parameter counts and FLOPs per step.
//
//	go test ./trainer/model -run '^$' -bench TrainStep -benchtime 3x
func BenchmarkTrainStep(b *testing.B) {
	cases := []struct {
		name       string
		cfg        Config
		video      bool
		B, T, H, W int
	}{
		{"tiny/video/B2xT8x32x32", Tiny(), true, 2, 8, 32, 32},
		{"tiny/backbone/B16x32x32", Tiny(), false, 16, 1, 32, 32},
		{"timelapse/video/B1xT25x64x64", Timelapse(), true, 1, 25, 64, 64},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p, err := NewParams(c.cfg, 1)
			if err != nil {
				b.Fatal(err)
			}
			tg, err := BuildTrain(p, c.video, c.B, c.T, c.H, c.W)
			if err != nil {
				b.Fatal(err)
			}
			defer tg.Close()
			rng := rand.New(rand.NewPCG(1, 1))
			in := randSlice(rng, c.B*c.T*c.cfg.InChannels*c.H*c.W)
			target := randSlice(rng, c.B*c.T*c.cfg.OutChannels*c.H*c.W)
			ts := make([]float32, c.B*c.T)
			for i := range ts {
				ts[i] = float32(rng.IntN(1000))
			}
			if _, err := tg.Step(in, ts, target); err != nil { // warm-up: buffers
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				if _, err := tg.Step(in, ts, target); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu := cpuSeconds() - cpu0
			total, temporal := p.Count()
			trainable := 0
			for _, q := range tg.Trainable {
				trainable += len(q.Data)
			}
			flops := float64(tg.FLOPs + tg.BackwardFLOPs)
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(total), "params")
			b.ReportMetric(float64(trainable), "trainable")
			b.ReportMetric(flops/1e9, "GFLOP/step")
			b.ReportMetric(flops/sec/1e9, "GFLOP/s")
			b.ReportMetric(sec, "s/step")
			b.ReportMetric(cpu/float64(b.N), "CPU-s/step")
			b.ReportMetric(maxRSSMB(), "maxRSS-MB")
			b.Logf("%s: params %d (temporal %d), trainable %d, fwd %.2f GFLOP + bwd %.2f GFLOP, %.3f s/step, %.3f CPU-s/step",
				c.name, total, temporal, trainable, float64(tg.FLOPs)/1e9, float64(tg.BackwardFLOPs)/1e9, sec, cpu/float64(b.N))
		})
	}
}

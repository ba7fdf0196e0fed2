//go:build gpu

package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// flashCases are the attention shapes of the SD nets at full size (SD-1.5
// head dims 40, 80, 160: self-attention over 4096, 1024, 256 and 64
// positions, cross-attention to the 77 text tokens, temporal attention over
// 25 training and 120 sampling frames), the tiny fixtures' narrow heads
// (dims 2, 4, 8, 16 and an odd 6 that loads element by element), lengths
// off the tiles, and CLIP's causal self-attention. N is cut where the full
// batch only repeats work.
type flashCase struct {
	name            string
	n, lq, lk, c, h int
	causal, fp16    bool // fp16: also run with float16 operands
}

var flashCases = []flashCase{
	{"self-4096-d40", 1, 4096, 4096, 320, 8, false, false},
	{"self-1024-d80", 2, 1024, 1024, 640, 8, false, true},
	{"self-256-d160", 4, 256, 256, 1280, 8, false, false},
	{"self-64-d160", 8, 64, 64, 1280, 8, false, false},
	{"cross-4096x77-d40", 2, 4096, 77, 320, 8, false, true},
	{"cross-1024x77-d80", 2, 1024, 77, 640, 8, false, false},
	{"cross-256x77-d160", 4, 256, 77, 1280, 8, false, false},
	{"cross-64x77-d160", 4, 64, 77, 1280, 8, false, false},
	{"temporal-25-d40", 512, 25, 25, 320, 8, false, false},
	{"temporal-25-d80", 256, 25, 25, 640, 8, false, false},
	{"temporal-25-d160", 64, 25, 25, 1280, 8, false, false},
	{"temporal-120-d40", 128, 120, 120, 320, 8, false, false},
	{"temporal-160-d80", 32, 160, 160, 640, 8, false, false},
	{"tiny-d2", 48, 3, 3, 16, 8, false, false},
	{"tiny-d8-cross", 6, 256, 77, 16, 2, false, false},
	{"tiny-d16", 6, 64, 64, 32, 2, false, false},
	{"odd-d6", 3, 130, 200, 12, 2, false, false},
	{"clip-causal-d64", 2, 77, 77, 768, 12, true, false},
	{"causal-300-d32", 2, 300, 300, 64, 2, true, false},
	// flash_wide.cu's kernels (flashWideMin queries or keys and more):
	// lengths off its 256-row blocks and 64/32 tiles (the masked tails, a
	// warp with only its first rows or none live), head dims 40 of 48 and
	// 24 of 32 (a last k8 step and an odd n8 tile), 36 (zeros up to 40),
	// 64 (neither); wide queries with narrow keys and the reverse.
	{"wide-odd-d40", 2, 1000, 777, 320, 8, false, true},
	{"wide-513-d36", 1, 513, 520, 72, 2, false, false},
	{"wide-d24", 2, 520, 1100, 48, 2, false, true},
	{"wide-d64", 1, 600, 530, 512, 8, false, false},
	{"wide-q-only-d40", 1, 700, 300, 320, 8, false, false},
	{"wide-kv-only-d40", 1, 200, 900, 320, 8, false, false},
}

// flashTol bounds the relative (L2) error of the fused bfloat16 attention
// against the float32 cuBLAS path: bfloat16 keeps 8 significant bits (a
// rounding of up to 2^-9 = 2e-3 per operand); the output carries the
// rounding of q, k, P and v, the gradients that of dout and dS as well.
const flashTol = 2e-2

// flashTolFP16 is flashTol for float16 operands (10 significant bits, a
// rounding 8 times smaller).
const flashTolFP16 = 5e-3

// TestFlashAttentionMatchesFloat32 checks flash_fwd and the backward
// kernels against SDNet's float32 attention on random inputs, every shape of
// flashCases, and that the backward pass works without saved forward
// results (recomputed).
func TestFlashAttentionMatchesFloat32(t *testing.T) {
	d := sdDevice(t, false)
	k, err := openKernels(d)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	fmt.Println("| shape | operands | N | Lq | Lk | C | heads | y | dq | dk | dv |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, pc := range []struct {
		prec Precision
		tol  float64
	}{{BF16, flashTol}, {FP16, flashTolFP16}} {
		s := &SDNet{dev: d, k: k, prec: pc.prec, bf16: true, attnBudget: 1 << 27, p: &sdPlan{backward: []bool{true}}}
		defer s.fl.release()
		for _, tc := range flashCases {
			if pc.prec == FP16 && !tc.fp16 {
				continue
			}
			t.Run(string(pc.prec)+"/"+tc.name, func(t *testing.T) { testFlashCase(t, d, s, rng, tc, pc.tol) })
		}
	}
}

func testFlashCase(t *testing.T, d *cuda.Device, s *SDNet, rng *rand.Rand, tc flashCase, tol float64) {
	var err error
	{
		{
			l := model.Layer{Kind: model.SeqAttention, Heads: tc.h, Causal: tc.causal}
			up := func(n int, scale float64) *cuda.Tensor {
				x, err := d.FromHost(randn(rng, n, scale), n)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(x.Free)
				return x
			}
			nq, nk := tc.n*tc.lq*tc.c, tc.n*tc.lk*tc.c
			q, kk, v, dout := up(nq, 1.5), up(nk, 1.5), up(nk, 1), up(nq, 1)
			for _, x := range []*cuda.Tensor{q, dout} {
				x.Shape = []int{tc.n, tc.lq, tc.c}
			}
			for _, x := range []*cuda.Tensor{kk, v} {
				x.Shape = []int{tc.n, tc.lk, tc.c}
			}
			if _, ok := flashDP(tc.c / tc.h); !ok {
				t.Fatalf("head dim %d has no fused module", tc.c/tc.h)
			}
			outs := func(fused bool, saved bool) [4][]float32 {
				y := up(nq, 0)
				dq, dk, dv := up(nq, 0), up(nk, 0), up(nk, 0)
				if fused {
					if err := s.flashForward(0, l, y, q, kk, v); err != nil {
						t.Fatal(err)
					}
					if !saved {
						s.fl.release()
					}
					if err := s.flashBackward(0, l, dq, dk, dv, dout, q, kk, v); err != nil {
						t.Fatal(err)
					}
				} else {
					if err := s.seqAttentionForward(l, y, q, kk, v); err != nil {
						t.Fatal(err)
					}
					if err := s.seqAttentionBackward(l, dq, dk, dv, dout, q, kk, v); err != nil {
						t.Fatal(err)
					}
				}
				var r [4][]float32
				for i, x := range []*cuda.Tensor{y, dq, dk, dv} {
					if r[i], err = x.ToHost(); err != nil {
						t.Fatal(err)
					}
				}
				return r
			}
			want, got := outs(false, false), outs(true, true)
			var errs [4]float64
			for i, what := range []string{"y", "dq", "dk", "dv"} {
				errs[i] = checkRel(t, what, got[i], want[i], tol)
			}
			fmt.Printf("| %s | %s | %d | %d | %d | %d | %d | %.2e | %.2e | %.2e | %.2e |\n", tc.name, s.prec, tc.n, tc.lq, tc.lk, tc.c, tc.h,
				errs[0], errs[1], errs[2], errs[3])
			if len(s.fl.saved) != 0 {
				t.Errorf("%d saved forward results left after the backward pass", len(s.fl.saved))
			}
			re := outs(true, false)
			for i, what := range []string{"y", "dq", "dk", "dv"} {
				if e := relErr(re[i], got[i]); e != 0 {
					t.Errorf("%s with the forward recomputed differs from the saved one by %.3g", what, e)
				}
			}
		}
	}
}

// TestFlashAttentionOnlySomeGradients: the backward pass writes only the
// gradients asked for (the dK-only and dV-only kernels of wide heads, dQ
// alone).
func TestFlashAttentionOnlySomeGradients(t *testing.T) {
	d := sdDevice(t, false)
	k, err := openKernels(d)
	if err != nil {
		t.Fatal(err)
	}
	s := &SDNet{dev: d, k: k, bf16: true, attnBudget: 1 << 27, p: &sdPlan{backward: []bool{true}}}
	defer s.fl.release()
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []int{320, 1280} {
		const n, lq, lk, h = 2, 256, 77, 8
		a := nn.SeqAttentionShape{N: n, Lq: lq, Lk: lk, C: c, Heads: h}
		mk := func(data []float32, shape ...int) *cuda.Tensor {
			x, err := d.FromHost(data, shape...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(x.Free)
			return x
		}
		q, kk, v := mk(randn(rng, a.QLen(), 1), n, lq, c), mk(randn(rng, a.KVLen(), 1), n, lk, c), mk(randn(rng, a.KVLen(), 1), n, lk, c)
		dout := mk(randn(rng, a.QLen(), 1), n, lq, c)
		l := model.Layer{Kind: model.SeqAttention, Heads: h}
		full := [3]*cuda.Tensor{mk(make([]float32, a.QLen()), n, lq, c), mk(make([]float32, a.KVLen()), n, lk, c), mk(make([]float32, a.KVLen()), n, lk, c)}
		if err := s.flashBackward(0, l, full[0], full[1], full[2], dout, q, kk, v); err != nil {
			t.Fatal(err)
		}
		for only := 0; only < 3; only++ {
			var g [3]*cuda.Tensor
			g[only] = mk(make([]float32, full[only].Len()), full[only].Shape...)
			if err := s.flashBackward(0, l, g[0], g[1], g[2], dout, q, kk, v); err != nil {
				t.Fatal(err)
			}
			got, err := g[only].ToHost()
			if err != nil {
				t.Fatal(err)
			}
			want, err := full[only].ToHost()
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(got, want); e != 0 {
				t.Errorf("C=%d: gradient %d alone differs from the full backward pass by %.3g", c, only, e)
			}
		}
	}
}

// flashStepShapes are the attention layers of the full-size SD-1.5 pseudo-3D
// UNet step (B=1, T=25, 64x64 latents): per level, the transformer blocks'
// self-attention (25 frames of the level's positions), cross-attention to
// the 77 text tokens and temporal attention (one sequence of 25 frames per
// position); count is how many layers of that shape one step runs
// (5 transformer blocks at each of levels 0-2, 1 in the middle).
// bench/flash_sdpa.py times PyTorch on the same list.
var flashStepShapes = []struct {
	name            string
	count           int
	n, lq, lk, c, h int
}{
	{"self 4096 d40", 5, 25, 4096, 4096, 320, 8},
	{"cross 4096x77 d40", 5, 25, 4096, 77, 320, 8},
	{"temporal 25 d40", 5, 4096, 25, 25, 320, 8},
	{"self 1024 d80", 5, 25, 1024, 1024, 640, 8},
	{"cross 1024x77 d80", 5, 25, 1024, 77, 640, 8},
	{"temporal 25 d80", 5, 1024, 25, 25, 640, 8},
	{"self 256 d160", 5, 25, 256, 256, 1280, 8},
	{"cross 256x77 d160", 5, 25, 256, 77, 1280, 8},
	{"temporal 25 d160", 5, 256, 25, 25, 1280, 8},
	{"self 64 d160", 1, 25, 64, 64, 1280, 8},
	{"cross 64x77 d160", 1, 25, 64, 77, 1280, 8},
	{"temporal 25 d160 (mid)", 1, 64, 25, 25, 1280, 8},
}

// TestFlashBench times the fused bfloat16 attention, forward and
// forward+backward (all three gradients), on each attention shape of the
// full-size step (PIPELINE_SD_BENCH=1), median of 10 after a warm-up;
// PIPELINE_FLASH_BENCH_SHAPES (comma-separated parts of their names)
// picks some.
func TestFlashBench(t *testing.T) {
	if os.Getenv("PIPELINE_SD_BENCH") != "1" {
		t.Skip("PIPELINE_SD_BENCH=1 runs the attention benchmark")
	}
	d := sdDevice(t, false)
	k, err := openKernels(d)
	if err != nil {
		t.Fatal(err)
	}
	s := &SDNet{dev: d, k: k, prec: BF16, bf16: true, attnBudget: 1 << 28, p: &sdPlan{backward: []bool{true}}}
	defer s.fl.release()
	rng := rand.New(rand.NewPCG(8, 9))
	fmt.Println("| attention (ours, flash bf16) | layers | fwd ms | fwd+bwd ms | step total fwd+bwd ms | flash.cu only: fwd ms | fwd+bwd ms |\n|---|---:|---:|---:|---:|---:|---:|")
	total := 0.0
	pick := func(name string) bool {
		sel := os.Getenv("PIPELINE_FLASH_BENCH_SHAPES")
		for _, p := range strings.Split(sel, ",") {
			if strings.Contains(name, p) {
				return true
			}
		}
		return sel == ""
	}
	for _, sh := range flashStepShapes {
		if !pick(sh.name) {
			continue
		}
		a := nn.SeqAttentionShape{N: sh.n, Lq: sh.lq, Lk: sh.lk, C: sh.c, Heads: sh.h}
		mk := func(n int, shape ...int) *cuda.Tensor {
			x, err := d.FromHost(randn(rng, n, 1), shape...)
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
		q, kk, v, dout := mk(a.QLen(), sh.n, sh.lq, sh.c), mk(a.KVLen(), sh.n, sh.lk, sh.c), mk(a.KVLen(), sh.n, sh.lk, sh.c), mk(a.QLen(), sh.n, sh.lq, sh.c)
		y, dq, dk, dv := mk(a.QLen()), mk(a.QLen()), mk(a.KVLen()), mk(a.KVLen())
		l := model.Layer{Kind: model.SeqAttention, Heads: sh.h}
		run := func(bwd bool) time.Duration {
			var ts []time.Duration
			for i := 0; i < 11; i++ {
				if err := d.Sync(); err != nil {
					t.Fatal(err)
				}
				st := time.Now()
				if err := s.flashForward(0, l, y, q, kk, v); err != nil {
					t.Fatal(err)
				}
				if bwd {
					if err := s.flashBackward(0, l, dq, dk, dv, dout, q, kk, v); err != nil {
						t.Fatal(err)
					}
				} else {
					s.fl.release()
				}
				if err := d.Sync(); err != nil {
					t.Fatal(err)
				}
				if i > 0 {
					ts = append(ts, time.Since(st))
				}
			}
			return median(ts)
		}
		f, fb := run(false), run(true)
		ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
		total += float64(sh.count) * ms(fb)
		narrow := "| - | - |" // the same kernels
		if c, err := s.flashCall(a); err == nil && (c.wide(a.Lq) || c.wide(a.Lk)) {
			flashNarrow = true
			nf, nfb := run(false), run(true)
			flashNarrow = false
			narrow = fmt.Sprintf("| %.3f | %.3f |", ms(nf), ms(nfb))
		}
		fmt.Printf("| %s | %d | %.3f | %.3f | %.1f %s\n", sh.name, sh.count, ms(f), ms(fb), float64(sh.count)*ms(fb), narrow)
		for _, x := range []*cuda.Tensor{q, kk, v, dout, y, dq, dk, dv} {
			x.Free()
		}
	}
	fmt.Printf("| all attention layers of one step | | | | %.1f | | |\n", total)
}

// TestFlashKernelResources prints the registers, local memory (spills)
// and static shared memory of the fused attention kernels at SD's head
// dims (40, 64, 80, 160) and checks the driver reports them.
func TestFlashKernelResources(t *testing.T) {
	d := sdDevice(t, false)
	k, err := openKernels(d)
	if err != nil {
		t.Fatal(err)
	}
	s := &SDNet{dev: d, k: k, bf16: true}
	fmt.Println("| module | kernel | registers | local bytes | shared bytes |\n|---|---|---:|---:|---:|")
	for _, key := range []flashKey{{true, 48, 40}, {false, 48, 40}, {true, 64, 64}, {true, 80, 80}, {true, 160, 160}} {
		m, err := s.flashModule(key)
		if err != nil {
			t.Fatal(err)
		}
		names := []string{"flash_fwd", "flash_bwd_dq", "flash_bwd_dk", "flash_bwd_dv"}
		if key.dp <= flashFusedKV {
			names = append(names, "flash_bwd_dkv")
		}
		if key.dp <= flashWideDP {
			names = append(names, "flash_fwd_w", "flash_bwd_dq_w", "flash_bwd_dkv_w")
		}
		for _, n := range names {
			r, err := m.Resources(n)
			if err != nil {
				t.Fatal(err)
			}
			if r.Registers <= 0 {
				t.Errorf("%s %s: %d registers reported", m.Info().Name, n, r.Registers)
			}
			fmt.Printf("| %s | %s | %d | %d | %d |\n", m.Info().Name, n, r.Registers, r.LocalBytes, r.SharedBytes)
		}
	}
}

// TestFlashFP16OverflowIsVisible: a loss-scaled gradient beyond float16's
// range reaches the fused attention's float16 operands as inf, so the
// attention's gradients are not finite and the loss scale's inf check
// (sd_half_scale.go) skips the step instead of training on clipped values.
func TestFlashFP16OverflowIsVisible(t *testing.T) {
	d := sdDevice(t, false)
	k, err := openKernels(d)
	if err != nil {
		t.Fatal(err)
	}
	s := &SDNet{dev: d, k: k, prec: FP16, bf16: true, attnBudget: 1 << 27, p: &sdPlan{backward: []bool{true}}}
	defer s.fl.release()
	rng := rand.New(rand.NewPCG(7, 8))
	const n, lq, lk, c, h = 2, 130, 77, 320, 8
	mk := func(data []float32, shape ...int) *cuda.Tensor {
		x, err := d.FromHost(data, shape...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(x.Free)
		return x
	}
	q, kk, v := mk(randn(rng, n*lq*c, 1), n, lq, c), mk(randn(rng, n*lk*c, 1), n, lk, c), mk(randn(rng, n*lk*c, 1), n, lk, c)
	for _, big := range []bool{false, true} {
		g := randn(rng, n*lq*c, 1)
		if big {
			g[lq*c+5] = 1e6 // sequence 1, head 0: beyond 65504
		}
		dout := mk(g, n, lq, c)
		dq, dk, dv := mk(make([]float32, n*lq*c), n, lq, c), mk(make([]float32, n*lk*c), n, lk, c), mk(make([]float32, n*lk*c), n, lk, c)
		l := model.Layer{Kind: model.SeqAttention, Heads: h}
		if err := s.flashBackward(0, l, dq, dk, dv, dout, q, kk, v); err != nil {
			t.Fatal(err)
		}
		for i, x := range []*cuda.Tensor{dq, dk, dv} {
			got, err := x.ToHost()
			if err != nil {
				t.Fatal(err)
			}
			bad := 0
			for _, f := range got {
				if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
					bad++
				}
			}
			if big && bad == 0 {
				t.Errorf("gradient %d: finite everywhere although dout overflows float16", i)
			}
			if !big && bad != 0 {
				t.Errorf("gradient %d: %d non-finite values from an in-range dout", i, bad)
			}
		}
	}
}

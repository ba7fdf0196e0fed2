package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// bf16At reads the bfloat16 element i of a packed 16-bit operand.
func bf16At(p uintptr, i int64) float32 {
	q := p + uintptr(i)*bf16Size
	h := **(**uint16)(unsafe.Pointer(&q))
	return math.Float32frombits(uint32(h) << 16)
}

// roundBF16 rounds f to the nearest bfloat16 (ties to even).
func roundBF16(f float32) float32 {
	b := math.Float32bits(f)
	b += 0x7fff + (b>>16)&1
	return math.Float32frombits(b &^ 0xffff)
}

// packBF16 returns v rounded to bfloat16, packed two per slot, and v's
// rounded values as float32.
func packBF16(v []float32) (packed []uint16, rounded []float32) {
	packed, rounded = make([]uint16, len(v)), make([]float32, len(v))
	for i, f := range v {
		rounded[i] = roundBF16(f)
		packed[i] = uint16(math.Float32bits(rounded[i]) >> 16)
	}
	return packed, rounded
}

func addr16(s []uint16) uintptr { return uintptr(unsafe.Pointer(&s[0])) }

// The temporal convolution's products on bfloat16 operands (the half
// precisions' trainable layers, sd_t16.go) address their 16-bit operands
// right: on the CPU emulation, each pass equals the float32 pass on the
// bfloat16-rounded operands.
func TestDirectTemporalConvHalfOperands(t *testing.T) {
	ops := tconvOps(cuda.TypeBF16)
	for i, s := range []nn.TemporalConvShape{
		{B: 2, T: 4, C: 3, K: 5, P: 6},
		{B: 1, T: 3, C: 2, K: 3, P: 7},
		{B: 2, T: 1, C: 3, K: 2, P: 4},
		{B: 1, T: 5, C: 4, K: 4, P: 3},
	} {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 9))
			rnd := func(n int) []float32 { return randn(rng, n, 1) }
			dev := &cpuTconv{}
			poisoned := func(n int) []float32 { p, _, _ := dev.alloc(n); return unsafe.Slice(at(p), n) }
			xh, x := packBF16(rnd(s.InLen()))
			dyh, dy := packBF16(rnd(s.OutLen()))
			w := rnd(s.WeightLen())
			// the rearranged weights, rounded after rearranging (as sd_t16.go does)
			wf, wd := make([]float32, s.K*3*s.C), make([]float32, s.K*3*s.C)
			_ = dev.wfwd(addr(wf), addr(w), s.K, s.C)
			_ = dev.wdata(addr(wd), addr(w), s.K, s.C)
			wfh, _ := packBF16(wf)
			wdh, _ := packBF16(wd)
			wr := make([]float32, len(w))
			for j, f := range w {
				wr[j] = roundBF16(f)
			}

			want := make([]float32, s.OutLen())
			nn.TemporalConvForward(want, x, wr, nil, s)
			got := poisoned(s.OutLen())
			if err := tconvGemm3(dev, ops, addr(got), addr16(xh), addr16(wfh), s.K, s.C, s.B, s.T, s.P); err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(got, want); e > 1e-6 {
				t.Errorf("forward: rel err %.3g", e)
			}
			wantDx := make([]float32, s.InLen())
			nn.TemporalConvBackwardData(wantDx, dy, wr, s)
			gotDx := poisoned(s.InLen())
			if err := tconvGemm3(dev, ops, addr(gotDx), addr16(dyh), addr16(wdh), s.C, s.K, s.B, s.T, s.P); err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(gotDx, wantDx); e > 1e-6 {
				t.Errorf("backward data: rel err %.3g", e)
			}
			wantDw := make([]float32, s.WeightLen())
			nn.TemporalConvBackwardFilter(wantDw, nil, dy, x, s)
			gotDw := poisoned(s.WeightLen())
			if err := tconvBackwardFilterOps(dev, ops, addr(gotDw), addr16(dyh), addr16(xh), s); err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(gotDw, wantDw); e > 1e-6 {
				t.Errorf("backward filter: rel err %.3g", e)
			}
		})
	}
}

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

// The CPU emulation of tconvHalfDev's kernels (bfloat16 only), as
// kernels/tconv.cu computes them.

func setBF16(p uintptr, i int64, f float32) {
	q := p + uintptr(i)*bf16Size
	**(**uint16)(unsafe.Pointer(&q)) = uint16(math.Float32bits(roundBF16(f)) >> 16)
}

func bf16Only(o tconvOps) error {
	if cuda.DataType(o) != cuda.TypeBF16 {
		return fmt.Errorf("cpuTconv: bfloat16 operands only")
	}
	return nil
}

func (c *cpuTconv) xAug(y, x uintptr, o tconvOps, n int64, ch, r, p, ones int) error {
	for f := int64(0); f < n; f++ {
		for row := 0; row < r; row++ {
			for q := 0; q < p; q++ {
				v := float32(0)
				switch {
				case row < ch:
					v = *fl(x, (f*int64(ch)+int64(row))*int64(p)+int64(q))
				case row < ch+ones:
					v = 1
				}
				setBF16(y, (f*int64(r)+int64(row))*int64(p)+int64(q), v)
			}
		}
	}
	return bf16Only(o)
}

func (c *cpuTconv) xCMajor(y, x uintptr, o tconvOps, n int64, ch, p int) error {
	for f := int64(0); f < n; f++ {
		for cc := int64(0); cc < int64(ch); cc++ {
			for q := int64(0); q < int64(p); q++ {
				setBF16(y, (cc*n+f)*int64(p)+q, *fl(x, (f*int64(ch)+cc)*int64(p)+q))
			}
		}
	}
	return bf16Only(o)
}

func (c *cpuTconv) dySplit(yh, yt, rs, dy uintptr, o tconvOps, n int64, ch, p int) error {
	for f := int64(0); f < n; f++ {
		for cc := int64(0); cc < int64(ch); cc++ {
			row := f*int64(ch) + cc
			var sum float32
			for q := int64(0); q < int64(p); q++ {
				v := *fl(dy, row*int64(p)+q)
				sum += v
				if yh != 0 {
					setBF16(yh, row*int64(p)+q, v)
				}
				if yt != 0 {
					setBF16(yt, (cc*n+f)*int64(p)+q, v)
				}
			}
			if rs != 0 {
				*fl(rs, row) = sum
			}
		}
	}
	return bf16Only(o)
}

func (c *cpuTconv) wfwdHalf(out, w, b uintptr, o tconvOps, k, ch, r int) error {
	for kk := 0; kk < k; kk++ {
		for j := 0; j < 3; j++ {
			for cc := 0; cc < r; cc++ {
				v := float32(0)
				switch {
				case cc < ch:
					v = *fl(w, int64((kk*ch+cc)*3+j))
				case b != 0 && j == 1 && cc == ch:
					v = *fl(b, int64(kk))
				case b != 0 && j == 1 && cc == ch+1:
					v = *fl(b, int64(kk)) - roundBF16(*fl(b, int64(kk)))
				}
				setBF16(out, int64((kk*3+j)*r+cc), v)
			}
		}
	}
	return bf16Only(o)
}

func (c *cpuTconv) wgradSum(dw, part uintptr, s, k, ch int) error {
	n := k * ch
	for i := 0; i < n; i++ {
		for j := 0; j < 3; j++ {
			var acc float32
			for q := 0; q < s; q++ {
				acc += *fl(part, int64((j*s+q)*n+i))
			}
			*fl(dw, int64(i*3+j)) = acc
		}
	}
	return nil
}

func (c *cpuTconv) colSums(out, x uintptr, rows, cols int64, chunk int) error {
	for g := int64(0); g*int64(chunk) < rows; g++ {
		for col := int64(0); col < cols; col++ {
			var acc float32
			for r := g * int64(chunk); r < min(rows, (g+1)*int64(chunk)); r++ {
				acc += *fl(x, r*cols+col)
			}
			*fl(out, g*cols+col) = acc
		}
	}
	return nil
}

func roundedBF16(v []float32) []float32 {
	_, r := packBF16(v)
	return r
}

// The 16-bit temporal convolution of tconv_fast.go (the bias in the GEMM,
// one dy pass, the channel-major split-K weight gradient) equals the
// float32 convolution on the bfloat16-rounded operands: on the CPU
// emulation, with reductions split into slices as at SD size.
func TestTemporalConvFastHalf(t *testing.T) {
	defer func(m int) { minSlice = m }(minSlice)
	minSlice = 8
	ops := tconvOps(cuda.TypeBF16)
	for i, s := range []nn.TemporalConvShape{
		{B: 2, T: 4, C: 3, K: 5, P: 8},
		{B: 1, T: 3, C: 10, K: 6, P: 16},
		{B: 2, T: 1, C: 3, K: 2, P: 8},
		{B: 1, T: 5, C: 9, K: 4, P: 64},
	} {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			if i == 3 && tconvSlices(s.K, s.C, s.P, s.T) < 2 {
				t.Fatalf("shape %+v is not split", s)
			}
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			rnd := func(n int) []float32 { return randn(rng, n, 1) }
			dev := &cpuTconv{}
			poisoned := func(n int) []float32 { p, _, _ := dev.alloc(n); return unsafe.Slice(at(p), n) }
			x, w, b, dy := rnd(s.InLen()), rnd(s.WeightLen()), rnd(s.K), rnd(s.OutLen())
			xr, wr, dyr := roundedBF16(x), roundedBF16(w), roundedBF16(dy)

			for _, withBias := range []bool{true, false} {
				want := make([]float32, s.OutLen())
				var bp uintptr
				if withBias {
					nn.TemporalConvForward(want, xr, wr, b, s)
					bp = addr(b)
				} else {
					nn.TemporalConvForward(want, xr, wr, nil, s)
				}
				got := poisoned(s.OutLen())
				if err := tconvForwardHalf(dev, ops, addr(got), addr(x), addr(w), bp, s); err != nil {
					t.Fatal(err)
				}
				if e := maxRelErr(got, want); e > 1e-5 {
					t.Errorf("forward (bias %v): rel err %.3g", withBias, e)
				}
			}

			g, err := tconvSplitGrad(dev, ops, addr(dy), s, true, true, true)
			if err != nil {
				t.Fatal(err)
			}
			defer g.free()
			wd := make([]float32, s.K*3*s.C)
			_ = dev.wdata(addr(wd), addr(w), s.K, s.C)
			wdh, _ := packBF16(wd)
			wantDx := make([]float32, s.InLen())
			nn.TemporalConvBackwardData(wantDx, dyr, wr, s)
			gotDx := poisoned(s.InLen())
			if err := g.data(dev, addr(gotDx), addr16(wdh)); err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(gotDx, wantDx); e > 1e-5 {
				t.Errorf("backward data: rel err %.3g", e)
			}
			wantDw := make([]float32, s.WeightLen())
			nn.TemporalConvBackwardFilter(wantDw, nil, dyr, xr, s)
			gotDw := poisoned(s.WeightLen())
			if err := g.filter(dev, addr(gotDw), addr(x)); err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(gotDw, wantDw); e > 1e-5 {
				t.Errorf("backward filter: rel err %.3g", e)
			}
			wantDb := make([]float32, s.K)
			for n := 0; n < s.B*s.T; n++ {
				for k := 0; k < s.K; k++ {
					for p := 0; p < s.P; p++ {
						wantDb[k] += dy[(n*s.K+k)*s.P+p]
					}
				}
			}
			gotDb := poisoned(s.K)
			if err := g.bias(dev, addr(gotDb)); err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(gotDb, wantDb); e > 1e-5 {
				t.Errorf("bias: rel err %.3g", e)
			}
		})
	}
}

// The trainable linears' split-K weight gradient and two-pass bias
// gradient equal the plain products.
func TestLinearGradsSplit(t *testing.T) {
	defer func(m int) { minSlice = m }(minSlice)
	minSlice = 8
	const rows, out, in = 640, 5, 3
	if s := linearSlices(rows, out, in); s < 2 {
		t.Fatalf("%d rows are not split (%d)", rows, s)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	dy, x := randn(rng, rows*out, 1), randn(rng, rows*in, 1)
	dev := &cpuTconv{}
	poisoned := func(n int) []float32 { p, _, _ := dev.alloc(n); return unsafe.Slice(at(p), n) }
	want, wantDb := make([]float32, out*in), make([]float32, out)
	nn.LinearBackwardParams(want, wantDb, dy, x, nn.LinearShape{N: rows, In: in, Out: out})
	got := poisoned(out * in)
	if err := linearWeightGrad(dev, tconvF32, addr(got), addr(dy), addr(x), rows, out, in); err != nil {
		t.Fatal(err)
	}
	if e := maxRelErr(got, want); e > 1e-5 {
		t.Errorf("dw: rel err %.3g", e)
	}
	gotDb := poisoned(out)
	if err := linearBiasGrad(dev, addr(gotDb), addr(dy), rows, out); err != nil {
		t.Fatal(err)
	}
	if e := maxRelErr(gotDb, wantDb); e > 1e-5 {
		t.Errorf("db: rel err %.3g", e)
	}
}

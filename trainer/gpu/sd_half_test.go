package gpu

import "testing"

func TestParsePrecision(t *testing.T) {
	for in, want := range map[string]Precision{"": FP32, "fp32": FP32, "TF32": TF32, "bf16": BF16, "bfloat16": BF16, "fp16": FP16, "float16": FP16} {
		got, err := ParsePrecision(in)
		if err != nil || got != want {
			t.Errorf("ParsePrecision(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParsePrecision("int8"); err == nil {
		t.Error("ParsePrecision(int8) accepted")
	}
	for _, c := range []struct {
		o    SDOptions
		want Precision
		bad  bool
	}{{SDOptions{}, FP32, false}, {SDOptions{BF16: true}, BF16, false}, {SDOptions{Precision: FP16}, FP16, false},
		{SDOptions{BF16: true, Precision: BF16}, BF16, false}, {SDOptions{BF16: true, Precision: FP16}, "", true}} {
		got, err := c.o.precision()
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("%+v: precision %q, %v; want %q (error %v)", c.o, got, err, c.want, c.bad)
		}
	}
}

func TestHalfFilterLayout(t *testing.T) {
	w := make([]float32, 2*3*2*2)
	for i := range w {
		w[i] = float32(i)
	}
	shape := []int{2, 3, 2, 2}
	old := convNHWC
	defer func() { convNHWC = old }()
	convNHWC = false
	if got := halfFilterLayout(w, shape); &got[0] != &w[0] {
		t.Error("NCHW layout copied the filter")
	}
	convNHWC = true
	got := halfFilterLayout(w, shape)
	// (k, c, j) at (k*4 + j)*3 + c
	for k := 0; k < 2; k++ {
		for c := 0; c < 3; c++ {
			for j := 0; j < 4; j++ {
				if g, want := got[(k*4+j)*3+c], w[(k*3+c)*4+j]; g != want {
					t.Fatalf("k %d c %d tap %d: %v, want %v", k, c, j, g, want)
				}
			}
		}
	}
}

//go:build gpu

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// worst tracks the largest relative error per top-level test and precision.
var (
	worstMu sync.Mutex
	worst   = map[string][2]float64{} // "TestOpConv2D fp32" -> {error, tolerance}
)

func record(name string, e, tol float64) {
	prec := "fp32"
	if strings.Contains(name, "/tf32") {
		prec = "tf32"
	}
	key := strings.SplitN(name, "/", 2)[0]
	for _, b := range []string{"cudnn", "im2col", "window"} {
		if strings.Contains(name, "/"+b+"/") {
			key += " " + b
		}
	}
	key += " " + prec
	worstMu.Lock()
	defer worstMu.Unlock()
	if w, ok := worst[key]; !ok || e > w[0] {
		worst[key] = [2]float64{e, tol}
	}
}

// TestMain prints the worst relative error of each op test last, as a summary table.
func TestMain(m *testing.M) {
	code := m.Run()
	keys := make([]string, 0, len(worst))
	for k := range worst {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		fmt.Println("worst relative error (GPU vs trainer/nn CPU):")
		for _, k := range keys {
			w := worst[k]
			status := "ok"
			if !(w[0] <= w[1]) {
				status = "FAIL"
			}
			fmt.Printf("  %-32s %10.3g  (tol %.0e) %s\n", k, w[0], w[1], status)
		}
	}
	os.Exit(code)
}

// Tolerances on ‖gpu − cpu‖ / ‖cpu‖ (issue 8).
const (
	tolStrict = 1e-4
	tolTF32   = 2e-3
)

var (
	testDevOnce sync.Once
	testDev     *Device
	testDevErr  error
)

// device opens GPU 0 once per test binary, with a fresh kernel cache folder.
func device(t testing.TB) *Device {
	t.Helper()
	testDevOnce.Do(func() {
		if ok, why := Available(); !ok {
			testDevErr = &skipError{why}
			return
		}
		dir, err := os.MkdirTemp("", "cuda-kernels-")
		if err != nil {
			testDevErr = err
			return
		}
		testDev, testDevErr = Open(0, Options{CacheDir: dir})
	})
	if testDevErr != nil {
		t.Fatalf("open GPU: %v", testDevErr)
	}
	return testDev
}

type skipError struct{ why string }

func (e *skipError) Error() string { return "no GPU: " + e.why }

// precisions runs f in strict float32 and in TF32, with the matching tolerance.
func precisions(t *testing.T, f func(t *testing.T, tol float64)) {
	d := device(t)
	for _, p := range []struct {
		name string
		tf32 bool
		tol  float64
	}{{"fp32", false, tolStrict}, {"tf32", true, tolTF32}} {
		t.Run(p.name, func(t *testing.T) {
			if err := d.setTF32(p.tf32); err != nil {
				t.Fatal(err)
			}
			defer d.setTF32(false)
			f(t, p.tol)
		})
	}
}

// convBackends runs f with cuDNN convolutions (when cuDNN loaded) and with the
// package's own im2col kernels; with cuDNN it checks that cuDNN really ran, unless
// mayDecline (cuDNN may refuse a strided layout and fall back).
func convBackends(t *testing.T, mayDecline bool, f func(t *testing.T)) {
	d := device(t)
	for _, useDNN := range []bool{true, false} {
		name := "im2col"
		if useDNN {
			name = "cudnn"
		}
		t.Run(name, func(t *testing.T) {
			if err := d.setCUDNN(useDNN); err != nil {
				t.Skipf("cuDNN: %v", err)
			}
			defer d.setCUDNN(d.dnn != nil)
			_, before := d.CUDNN()
			f(t)
			_, after := d.CUDNN()
			switch {
			case useDNN && after == before && !mayDecline:
				t.Error("cuDNN is on but ran no convolution")
			case !useDNN && after != before:
				t.Error("cuDNN is off but ran convolutions")
			case useDNN:
				t.Logf("cuDNN ran %d convolutions", after-before)
			}
		})
	}
}

// setCUDNN chooses cuDNN (true, the default when it loads) or the package's
// im2col kernels with cuBLAS (false), for tests of both paths; it fails when
// cuDNN did not load.
func (d *Device) setCUDNN(on bool) error {
	if on && d.dnn == nil {
		return fmt.Errorf("cuda: cuDNN did not load")
	}
	d.useDNN = on
	return nil
}

// randn returns n standard normal values.
func randn(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// upload copies host values to a new device tensor.
func upload(t testing.TB, d *Device, x []float32) *Tensor {
	t.Helper()
	g, err := d.FromHost(x)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// poisoned returns a device tensor of n NaNs, so an unwritten element fails the check.
func poisoned(t testing.TB, d *Device, n int) *Tensor {
	t.Helper()
	g, err := d.NewTensor(n)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Fill(float32(math.NaN())); err != nil {
		t.Fatal(err)
	}
	return g
}

// relErr is ‖got − want‖ / ‖want‖ in float64; NaN or Inf anywhere gives +Inf.
func relErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return math.Inf(1)
		}
		num += (g - w) * (g - w)
		den += w * w
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// check downloads g and compares it with the CPU result want.
func check(t *testing.T, what string, g *Tensor, want []float32, tol float64) {
	t.Helper()
	if err := g.dev.Sync(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	got, err := g.ToHost()
	if err != nil {
		t.Fatalf("%s: download: %v", what, err)
	}
	e := relErr(got, want)
	record(t.Name(), e, tol)
	if !(e <= tol) {
		t.Errorf("%s: relative error %.3g, want <= %.0e", what, e, tol)
	} else {
		t.Logf("%s: relative error %.3g", what, e)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func freeAll(ts ...*Tensor) {
	for _, x := range ts {
		x.Free()
	}
}

// setTF32 switches matrix products between strict float32 (false) and TF32 (true).
func (d *Device) setTF32(on bool) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := d.blas.setTF32(on); err != nil {
		return err
	}
	d.opts.TF32 = on
	return nil
}

// convPlans describes the cached cuDNN convolution plans, one line each: geometry,
// direction, precision, the chosen algorithm, its math type and workspace.
func (d *Device) convPlans() []string {
	if d.dnn == nil {
		return nil
	}
	d.dnn.mu.Lock()
	defer d.dnn.mu.Unlock()
	dirs := []string{"fwd", "bwd_data", "bwd_filter"}
	var out []string
	for g, p := range d.dnn.plans {
		how := "heuristic"
		if p.found {
			how = "timed"
		}
		out = append(out, fmt.Sprintf("%s n=%d c=%d h=%d w=%d k=%d %dx%d s=%d tf32=%v dt=%d nhwc=%v: algo %d (%s) math %d workspace %d",
			dirs[g.dir], g.n, g.c, g.h, g.w, g.k, g.kh, g.kw, g.strH, g.tf32, g.dt, g.nhwc, p.algo, how, p.math, p.ws))
	}
	for g, err := range d.dnn.bad {
		out = append(out, fmt.Sprintf("%s n=%d c=%d h=%d w=%d k=%d %dx%d declined: %v", dirs[g.dir], g.n, g.c, g.h, g.w, g.k, g.kh, g.kw, err))
	}
	sort.Strings(out)
	return out
}

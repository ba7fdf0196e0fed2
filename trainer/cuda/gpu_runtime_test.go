//go:build gpu

package cuda

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

func TestDeviceInfo(t *testing.T) {
	d := device(t)
	t.Logf("device: %s; modules: %+v", d, d.Modules())
	if d.major < 5 || d.sms <= 0 || d.total == 0 || d.driver < 12000 {
		t.Errorf("implausible device properties: %s", d)
	}
	free, total, err := d.MemInfo()
	must(t, err)
	if free == 0 || free > total {
		t.Errorf("MemInfo free %d total %d", free, total)
	}
}

// Every combination of transposes, leading dimensions and batch strides matches nn.Sgemm.
func TestGemm(t *testing.T) {
	precisions(t, func(t *testing.T, tol float64) {
		d := device(t)
		rng := rand.New(rand.NewPCG(1, 11))
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				m, n, k, batch := 37, 29, 45, 3
				lda, ldb, ldc := k+3, n+1, n+5
				if ta {
					lda = m + 2
				}
				if tb {
					ldb = k + 4
				}
				rowsA, rowsB := m, k
				if ta {
					rowsA = k
				}
				if tb {
					rowsB = n
				}
				sa, sb, sc := rowsA*lda+7, rowsB*ldb, m*ldc+1
				a, b, c := randn(rng, batch*sa), randn(rng, batch*sb), randn(rng, batch*sc)
				want := append([]float32(nil), c...)
				for i := 0; i < batch; i++ {
					nn.Sgemm(ta, tb, m, n, k, 1.5, a[i*sa:], lda, b[i*sb:], ldb, 0.5, want[i*sc:], ldc)
				}
				ga, gb, gc := upload(t, d, a), upload(t, d, b), upload(t, d, c)
				must(t, d.Gemm(Gemm{TransA: ta, TransB: tb, M: m, N: n, K: k, Alpha: 1.5, Beta: 0.5, A: ga.Ptr(), B: gb.Ptr(), C: gc.Ptr(),
					LDA: lda, LDB: ldb, LDC: ldc, StrideA: int64(sa), StrideB: int64(sb), StrideC: int64(sc), Batch: batch}))
				check(t, fmt.Sprintf("gemm ta=%v tb=%v", ta, tb), gc, want, tol)
				freeAll(ga, gb, gc)
			}
		}
	})
}

// The second identical "step" is served entirely from the allocator's cache, and the
// counters add up.
func TestAllocatorSteadyState(t *testing.T) {
	d := device(t)
	s := nn.Conv2DShape{N: 4, C: 16, H: 32, W: 32, K: 16, KH: 3, KW: 3, Stride: 1, Pad: 1}
	rng := rand.New(rand.NewPCG(2, 12))
	x, w, dy := randn(rng, s.InLen()), randn(rng, s.WeightLen()), randn(rng, s.OutLen())
	step := func() {
		gx, gw, gdy := upload(t, d, x), upload(t, d, w), upload(t, d, dy)
		gy, gdx, gdw := poisoned(t, d, s.OutLen()), poisoned(t, d, s.InLen()), poisoned(t, d, s.WeightLen())
		must(t, d.Conv2DForward(gy, gx, gw, nil, s))
		must(t, d.Conv2DBackwardData(gdx, gdy, gw, s))
		must(t, d.Conv2DBackwardFilter(gdw, nil, gdy, gx, s))
		must(t, d.Sync())
		freeAll(gx, gw, gdy, gy, gdx, gdw)
	}
	base := d.MemStats()
	step()
	after1 := d.MemStats()
	step()
	after2 := d.MemStats()
	t.Logf("after step 1: %+v; after step 2: %+v", after1, after2)
	if after2.DriverOps != after1.DriverOps {
		t.Errorf("step 2 called cuMemAlloc %d times, want 0", after2.DriverOps-after1.DriverOps)
	}
	if after2.Hits <= after1.Hits {
		t.Error("step 2 hit the cache 0 times")
	}
	if after2.InUse != base.InUse {
		t.Errorf("in use after the step %d, before %d: a leak", after2.InUse, base.InUse)
	}
	minPeak := int64(s.InLen()+s.WeightLen()+s.OutLen()) * 4 * 2
	if after2.Peak < minPeak {
		t.Errorf("peak %d below the step's live tensors %d", after2.Peak, minPeak)
	}
	if after2.Reserved < after2.InUse {
		t.Errorf("reserved %d < in use %d", after2.Reserved, after2.InUse)
	}
}

// childCacheEnv, when set, makes TestKernelCache the child process that
// opens the device with that cache folder and prints its modules' origins.
const childCacheEnv = "PIPELINE_TEST_CHILD_CACHE"

// The first Open with a fresh cache folder compiles; a second in the same
// process compiles nothing (the process cache); a new process reads the
// compiled image from the disk cache.
func TestKernelCache(t *testing.T) {
	if dir := os.Getenv(childCacheEnv); dir != "" {
		d, err := Open(0, Options{CacheDir: dir})
		must(t, err)
		defer d.Close()
		fmt.Printf("origin=%s\n", d.Modules()[0].Origin)
		// The cached kernels work.
		x := []float32{-2, -1, 0, 1, 2}
		want := make([]float32, len(x))
		nn.SiLUForward(want, x)
		gx, err := d.FromHost(x)
		must(t, err)
		gy, err := d.NewTensor(len(x))
		must(t, err)
		must(t, d.SiLUForward(gy, gx))
		check(t, "silu with cached kernels", gy, want, tolStrict)
		return
	}
	device(t)
	dir := t.TempDir()
	origins := []Origin{}
	for range 2 {
		d, err := Open(0, Options{CacheDir: dir})
		must(t, err)
		origins = append(origins, d.Modules()[0].Origin)
		must(t, d.Close())
	}
	if origins[0] != OriginCompiled || origins[1] != OriginProcess {
		t.Errorf("origins of two opens in one process: %v, want [%s %s]", origins, OriginCompiled, OriginProcess)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("cache folder holds %d files, want 1", len(entries))
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKernelCache$", "-test.v")
	cmd.Env = append(os.Environ(), childCacheEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "origin="+string(OriginDisk)+"\n") {
		t.Errorf("a new process did not load the kernels from the disk cache:\n%s", out)
	}
}

// Goroutines on different OS threads share the device: each call makes the context
// current on its own thread.
func TestConcurrentGoroutines(t *testing.T) {
	d := device(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 13))
			x := randn(rng, 10000)
			want := make([]float32, len(x))
			nn.SiLUForward(want, x)
			for r := 0; r < 20; r++ {
				gx, err := d.FromHost(x)
				if err != nil {
					errs <- err
					return
				}
				gy, err := d.NewTensor(len(x))
				if err != nil {
					errs <- err
					return
				}
				if err := d.SiLUForward(gy, gx); err != nil {
					errs <- err
					return
				}
				got, err := gy.ToHost()
				if err != nil {
					errs <- err
					return
				}
				if e := relErr(got, want); e > tolStrict {
					errs <- fmt.Errorf("goroutine %d round %d: relative error %g", g, r, e)
					return
				}
				gx.Free()
				gy.Free()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPinnedAndEvents(t *testing.T) {
	d := device(t)
	n := 1 << 20
	p, err := d.NewPinned(n)
	must(t, err)
	defer p.Free()
	h := p.Floats()
	for i := range h {
		h[i] = float32(i % 1000)
	}
	g, err := d.NewTensor(n)
	must(t, err)
	defer g.Free()
	s, err := d.NewStream()
	must(t, err)
	defer s.Destroy()
	start, err := d.NewEvent()
	must(t, err)
	end, err := d.NewEvent()
	must(t, err)
	must(t, start.Record(nil))
	must(t, g.UploadAsync(p, nil))
	must(t, d.Add(g, g, g))
	must(t, end.Record(nil))
	// The copy stream waits for the scale before reading back.
	must(t, d.Wait(s, end))
	must(t, g.DownloadAsync(p, s))
	must(t, s.Sync())
	for i, v := range p.Floats() {
		if v != float32(2*(i%1000)) {
			t.Fatalf("pinned[%d] = %v, want %v", i, v, 2*(i%1000))
		}
	}
	ms, err := Elapsed(start, end)
	must(t, err)
	if ms <= 0 || ms > 1000 {
		t.Errorf("elapsed %v ms", ms)
	}
}

func TestOperandChecks(t *testing.T) {
	d := device(t)
	a, err := d.NewTensor(10)
	must(t, err)
	b, err := d.NewTensor(11)
	must(t, err)
	defer freeAll(a, b)
	if err := d.SiLUForward(b, a); err == nil {
		t.Error("SiLU accepted tensors of different lengths")
	}
	c, err := d.NewTensor(10)
	must(t, err)
	c.Free()
	if err := d.SiLUForward(c, a); err == nil {
		t.Error("SiLU accepted a freed tensor")
	}
	if err := d.Conv2DForward(a, a, a, nil, nn.Conv2DShape{N: 1}); err == nil {
		t.Error("Conv2D accepted an invalid shape")
	}
}

// Open logs to the logger it is given (JSON lines with typed fields) and
// nothing to slog's default.
func TestLoggerReceivesRecords(t *testing.T) {
	device(t)
	var mine, global bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&global, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)
	d, err := Open(0, Options{CacheDir: t.TempDir(), Logger: slog.New(slog.NewJSONHandler(&mine, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	must(t, err)
	must(t, d.Close())
	found := false
	for _, line := range strings.Split(strings.TrimSpace(mine.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if rec["msg"] == "cuda: module loaded" {
			found = rec["module"] == "cuda" && rec["origin"] == string(OriginCompiled)
		}
	}
	if !found {
		t.Errorf("no module-loaded record with module and origin fields in:\n%s", mine.String())
	}
	if global.Len() != 0 {
		t.Errorf("records reached slog's default logger:\n%s", global.String())
	}
}

package trainer

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/timelapse-ml/pipeline/shards"
)

func TestHighFrequencyAndFrameChange(t *testing.T) {
	// a 2x2 checkerboard of +-0.5: every pixel is a corner, its replicated
	// neighbours give |4v - v - v + v + v| = 4*0.5
	cb := []float32{0.5, -0.5, -0.5, 0.5}
	if got, want := HighFrequency(cb, 1, 1, 2, 2), 4*0.5*127.5; math.Abs(got-want) > 1e-9 {
		t.Errorf("checkerboard hf = %g, want %g", got, want)
	}
	flat := []float32{0.3, 0.3, 0.3, 0.3, 0.3, 0.3}
	if got := HighFrequency(flat, 1, 1, 2, 3); got != 0 {
		t.Errorf("flat hf = %g, want 0", got)
	}
	// values beyond [-1, 1] count as the clamped pixels written
	if got, want := HighFrequency([]float32{3, -1, -1, 1}, 1, 1, 2, 2), HighFrequency([]float32{1, -1, -1, 1}, 1, 1, 2, 2); got != want {
		t.Errorf("unclamped hf %g, want %g", got, want)
	}
	two := []float32{0, 0, 0.5, -0.5}
	if got, want := FrameChange(two, 2, 2), 0.5*127.5; math.Abs(got-want) > 1e-9 {
		t.Errorf("frame change = %g, want %g", got, want)
	}
	if !math.IsNaN(FrameChange(two[:2], 1, 2)) {
		t.Error("frame change of one frame is not NaN")
	}
}

// A real validation clip measures about 1x the validation frames; the same
// clip with single-pixel noise far more.
func TestMeasureQualitySeesSpeckle(t *testing.T) {
	dir := makeShards(t, 4, 10, 16)
	ds, err := shards.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	vids := ds.Videos(shards.SplitVal)
	sort.Slice(vids, func(i, j int) bool { return vids[i].ID < vids[j].ID })
	const res, n = 16, 10
	fl := 3 * res * res
	clip := make([]float32, n*fl)
	for f := range n {
		img, err := ds.Frame(vids[0].ID, f+1)
		if err != nil {
			t.Fatal(err)
		}
		shards.ToTensor(clip[f*fl:(f+1)*fl], img, res)
	}
	ds.Close()
	q, err := MeasureQuality(clip, n, res, dir)
	if err != nil {
		t.Fatal(err)
	}
	if q.RealFrames != len(vids)*n || q.GeneratedFrames != n-1 || q.RealHF <= 0 || q.RealChange <= 0 {
		t.Fatalf("quality %+v", q)
	}
	if q.HFRatio < 0.8 || q.HFRatio > 1.25 || q.ChangeRatio < 0.5 || q.ChangeRatio > 2 {
		t.Errorf("a real clip measures hf ratio %.2f, change ratio %.2f; want about 1", q.HFRatio, q.ChangeRatio)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := fl; i < len(clip); i++ {
		clip[i] += float32(0.1 * rng.NormFloat64())
	}
	s, err := MeasureQuality(clip, n, res, dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.HFRatio < 2*q.HFRatio || s.ChangeRatio < 1.5*q.ChangeRatio {
		t.Errorf("speckle (sd 0.1) moved the hf ratio %.2f -> %.2f, the change ratio %.2f -> %.2f; want 2x and 1.5x",
			q.HFRatio, s.HFRatio, q.ChangeRatio, s.ChangeRatio)
	}
	if _, err := MeasureQuality(clip[:fl], 1, res, dir); err == nil {
		t.Error("a single frame accepted")
	}
}

// sample.json holds the result and the quality measure.
func checkSampleReport(t *testing.T, out string, res *SampleResult) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, SampleReport))
	if err != nil {
		t.Fatal(err)
	}
	var got SampleResult
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Quality == nil || got.Quality.RealHF <= 0 || got.Quality.GeneratedHF <= 0 || got.Quality.HFRatio <= 0 ||
		got.Frames != res.Frames || *got.Quality != *res.Quality {
		t.Errorf("%s: %s (result %+v)", SampleReport, b, res)
	}
}

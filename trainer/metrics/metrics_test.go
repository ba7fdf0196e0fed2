package metrics

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotter"
)

func TestLogFlushAndResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	l, err := Open(path, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	for s := 1; s <= 5; s++ {
		l.Add(Record{Step: s, Loss: 1 / float64(s), LR: 1e-3, GradNorm: 0.5, StepSeconds: 0.1, SamplesPerSec: 20})
	}
	l.SetValLoss(5, 0.3)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5", len(lines))
	}
	if !strings.Contains(lines[4], `"val_loss":0.3`) || strings.Contains(lines[3], "val_loss") {
		t.Errorf("val_loss placement wrong:\n%s", b)
	}
	for _, key := range []string{`"step":1`, `"loss":1`, `"lr":0.001`, `"grad_norm":0.5`, `"step_seconds":0.1`, `"samples_per_sec":20`} {
		if !strings.Contains(lines[0], key) {
			t.Errorf("line %s lacks %s", lines[0], key)
		}
	}
	// Resuming from step 3 drops records 4 and 5.
	r, err := Open(path, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Records) != 3 || r.Records[2].Step != 3 {
		t.Errorf("resumed records %+v", r.Records)
	}
	if fresh, _ := Open(path, false, 3); len(fresh.Records) != 0 {
		t.Error("a fresh log loaded old records")
	}
}

func TestReadFileReportsLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.jsonl")
	os.WriteFile(path, []byte("{\"step\":1}\n{oops\n"), 0o644)
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Errorf("err = %v, want one naming line 2", err)
	}
}

func TestPlotLoss(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loss.png")
	v := 0.4
	var recs []Record
	for s := 1; s <= 100; s++ {
		recs = append(recs, Record{Step: s, Loss: 1 / float64(s)})
	}
	recs[99].ValLoss = &v
	if err := PlotLoss(path, "train", recs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w < 500 {
		t.Errorf("plot is %d px wide", w)
	}
	// The smoothed curve's colour appears in the image.
	found := false
	bnd := img.Bounds()
	for y := bnd.Min.Y; y < bnd.Max.Y && !found; y++ {
		for x := bnd.Min.X; x < bnd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r>>8 == 31 && g>>8 == 119 && b>>8 == 180 {
				found = true
				break
			}
		}
	}
	if !found {
		t.Error("no pixel of the training curve's colour in the plot")
	}
}

func TestMovingMean(t *testing.T) {
	in := plotter.XYs{{X: 1, Y: 1}, {X: 2, Y: 3}, {X: 3, Y: 5}, {X: 4, Y: 7}}
	got := movingMean(in, 2)
	want := []float64{1, 2, 4, 6}
	for i, w := range want {
		if got[i].Y != w || got[i].X != in[i].X {
			t.Errorf("point %d = %+v, want y %v", i, got[i], w)
		}
	}
}

func TestPositiveTicks(t *testing.T) {
	ts := positiveTicks{}.Ticks(0.02, 0.45)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Value < ts[j].Value })
	labels := 0
	prev := 0.0
	for _, tk := range ts {
		if tk.Value <= prev || tk.Value < 0.02 || tk.Value > 0.45 {
			t.Fatalf("tick %v repeated or out of range in %v", tk.Value, ts)
		}
		prev = tk.Value
		if tk.Label != "" {
			labels++
		}
	}
	if labels < 3 {
		t.Errorf("only %d labelled ticks between 0.02 and 0.45: %v", labels, ts)
	}
}

// NaN and Inf are written as null: every line stays valid JSON, and reads
// back as NaN.
func TestNonFiniteIsNull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	l, _ := Open(path, false, 0)
	l.Add(Record{Step: 1, Loss: math.NaN(), LR: 1e-3, GradNorm: math.Inf(1), StepSeconds: 0.5, SamplesPerSec: 4})
	l.SetValLoss(1, math.Inf(-1))
	l.Add(Record{Step: 2, Loss: 0.25})
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
	}
	want := `{"step":1,"loss":null,"val_loss":null,"lr":0.001,"grad_norm":null,"step_seconds":0.5,"samples_per_sec":4}`
	if lines[0] != want {
		t.Errorf("line 1 = %s, want %s", lines[0], want)
	}
	recs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if !math.IsNaN(r.Loss) || !math.IsNaN(r.GradNorm) || r.ValLoss == nil || !math.IsNaN(*r.ValLoss) || r.LR != 1e-3 {
		t.Errorf("read back %+v", r)
	}
	if recs[1].Loss != 0.25 || recs[1].ValLoss != nil {
		t.Errorf("record 2 read back %+v", recs[1])
	}
}

package metrics

import (
	"bytes"
	"fmt"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// PlotLoss draws the training loss (and the validation loss where present)
// against the step and writes a PNG atomically to path. Steps without a
// training loss (validation-only records) are skipped in the training curve.
func PlotLoss(path, title string, recs []Record) error {
	var train, val plotter.XYs
	for _, r := range recs {
		if r.Loss > 0 && !math.IsInf(r.Loss, 0) && !math.IsNaN(r.Loss) { // 0: a validation-only record
			train = append(train, plotter.XY{X: float64(r.Step), Y: r.Loss})
		}
		if r.ValLoss != nil && *r.ValLoss > 0 {
			val = append(val, plotter.XY{X: float64(r.Step), Y: *r.ValLoss})
		}
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss (MSE)"
	p.Add(plotter.NewGrid())
	if len(train) > 0 {
		l, err := plotter.NewLine(train)
		if err != nil {
			return fmt.Errorf("loss plot: %w", err)
		}
		l.Color = plotColor(2)
		p.Add(l)
		p.Legend.Add("train", l)
		if w := len(train) / 40; w >= 2 {
			m, err := plotter.NewLine(movingMean(train, w))
			if err != nil {
				return fmt.Errorf("loss plot: %w", err)
			}
			m.Color = plotColor(0)
			m.Width = vg.Points(2)
			p.Add(m)
			p.Legend.Add(fmt.Sprintf("train, mean of %d", w), m)
		}
	}
	if len(val) > 0 {
		l, s, err := plotter.NewLinePoints(val)
		if err != nil {
			return fmt.Errorf("loss plot: %w", err)
		}
		l.Color, s.Color = plotColor(1), plotColor(1)
		p.Add(l, s)
		p.Legend.Add("validation", l, s)
	}
	p.Legend.Top = true
	p.X.Tick.Marker = intTicks{}
	// Log scale: the per-step loss spans orders of magnitude (one timestep
	// per clip) and the validation loss moves by a few percent.
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = positiveTicks{}
	w, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("loss plot: %w", err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return fmt.Errorf("loss plot: %w", err)
	}
	if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
		return fmt.Errorf("loss plot: %w", err)
	}
	return nil
}

// movingMean averages each point with the w-1 before it.
func movingMean(xy plotter.XYs, w int) plotter.XYs {
	out := make(plotter.XYs, 0, len(xy))
	var sum float64
	for i, p := range xy {
		sum += p.Y
		if i >= w {
			sum -= xy[i-w].Y
		}
		n := min(i+1, w)
		out = append(out, plotter.XY{X: p.X, Y: sum / float64(n)})
	}
	return out
}

// intTicks labels the step axis with whole numbers.
type intTicks struct{}

func (intTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

// positiveTicks labels a log axis at round values (0.02, 0.05, 0.1, ...
// as DefaultTicks picks them), leaving out those <= 0.
type positiveTicks struct{}

func (positiveTicks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	seen := map[float64]bool{}
	for lo := min; lo < max && lo > 0; lo *= 10 {
		for _, t := range (plot.DefaultTicks{}).Ticks(lo, math.Min(max, lo*10)) {
			if t.Value <= 0 || t.Value < min || t.Value > max || seen[t.Value] {
				continue
			}
			seen[t.Value] = true
			if t.Label != "" {
				t.Label = strconv.FormatFloat(t.Value, 'g', 3, 64)
			}
			out = append(out, t)
		}
	}
	return out
}

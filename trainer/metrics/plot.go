package metrics

import (
	"bytes"
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/timelapse-ml/pipeline/trainer/internal/atomic"
)

// PlotLoss draws the training loss (and the validation loss where present)
// against the step and writes a PNG atomically to path. Steps without a
// training loss (validation-only records) are skipped in the training curve.
func PlotLoss(path, title string, recs []Record) error {
	var train, val plotter.XYs
	for _, r := range recs {
		if r.Loss > 0 && !math.IsInf(r.Loss, 0) && !math.IsNaN(r.Loss) {
			train = append(train, plotter.XY{X: float64(r.Step), Y: r.Loss})
		}
		if r.ValLoss != nil {
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
	w, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("loss plot: %w", err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return fmt.Errorf("loss plot: %w", err)
	}
	if err := atomic.WriteFile(path, buf.Bytes()); err != nil {
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

package gpu

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// With Options.Profile the step records a CUDA event after every layer's
// forward and backward and sums the device time between consecutive events
// by layer kind and pass, to show where a step's GPU time goes. The events
// cost a little time themselves: profile in a separate run from timings.

type profiler struct {
	events []*cuda.Event
	labels []string
	n      int
	total  map[string]float64 // milliseconds, summed over profiled steps
	steps  int
}

func newProfiler(dev *cuda.Device, marks int) (*profiler, error) {
	p := &profiler{total: map[string]float64{}}
	for range marks {
		e, err := dev.NewEvent()
		if err != nil {
			p.free()
			return nil, err
		}
		p.events = append(p.events, e)
	}
	p.labels = make([]string, marks)
	return p, nil
}

func (p *profiler) free() {
	for _, e := range p.events {
		e.Destroy()
	}
	p.events = nil
}

// mark records the end of the work labelled label.
func (p *profiler) mark(label string) error {
	if p == nil || p.n >= len(p.events) {
		return nil
	}
	if err := p.events[p.n].Record(nil); err != nil {
		return err
	}
	p.labels[p.n] = label
	p.n++
	return nil
}

// collect adds the intervals of the finished step to the totals.
func (p *profiler) collect() error {
	if p == nil {
		return nil
	}
	for i := 1; i < p.n; i++ {
		ms, err := cuda.Elapsed(p.events[i-1], p.events[i])
		if err != nil {
			return err
		}
		p.total[p.labels[i]] += float64(ms)
	}
	p.n = 0
	p.steps++
	return nil
}

func layerLabel(l model.Layer, pass string) string {
	k := string(l.Kind)
	if l.Temporal {
		k += " (temporal)"
	}
	return k + " " + pass
}

// ProfileEntry is the mean device time per step of one kind of work.
type ProfileEntry struct {
	Label string  `json:"label"`
	MS    float64 `json:"ms"`
}

// Profile returns the mean device milliseconds per profiled step by layer
// kind and pass, largest first (nil without Options.Profile).
func (s *Step) Profile() []ProfileEntry {
	p := s.prof
	if p == nil || p.steps == 0 {
		return nil
	}
	var out []ProfileEntry
	for k, v := range p.total {
		out = append(out, ProfileEntry{k, v / float64(p.steps)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MS > out[j].MS })
	return out
}

// FormatProfile renders a profile as a markdown table.
func FormatProfile(es []ProfileEntry) string {
	var b strings.Builder
	var total float64
	for _, e := range es {
		total += e.MS
	}
	b.WriteString("| layer kind, pass | ms per step | share |\n|---|---|---|\n")
	for _, e := range es {
		fmt.Fprintf(&b, "| %s | %.2f | %.0f%% |\n", e.Label, e.MS, 100*e.MS/total)
	}
	fmt.Fprintf(&b, "| total | %.2f | |\n", total)
	return b.String()
}

// ResetProfile clears the profile totals (e.g. after warm-up steps).
func (s *Step) ResetProfile() {
	if s.prof != nil {
		s.prof.total = map[string]float64{}
		s.prof.steps = 0
	}
}

func msDuration(ms float32) time.Duration {
	return time.Duration(float64(ms) * float64(time.Millisecond))
}

// timeGradCopies fills Timing's gradient-copy fields from the copy events of
// the last Run, measured from the step's start event.
func (s *Step) timeGradCopies() error {
	end, err := cuda.Elapsed(s.evStart, s.evEnd)
	if err != nil {
		return err
	}
	var total, overlap, last float32
	for i := range s.copyStart {
		a, err := cuda.Elapsed(s.evStart, s.copyStart[i])
		if err != nil {
			return err
		}
		b, err := cuda.Elapsed(s.evStart, s.copyEnd[i])
		if err != nil {
			return err
		}
		total += b - a
		overlap += max(0, min(b, end)-a)
		last = max(last, b)
	}
	s.timing.GradCopy, s.timing.GradCopyOverlap = msDuration(total), msDuration(overlap)
	s.timing.GradCopyTail = msDuration(max(0, last-end))
	return nil
}

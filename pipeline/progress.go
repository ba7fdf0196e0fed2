package pipeline

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress is one stage's progress counter. The engine's display (a bar on a
// terminal, periodic log lines otherwise) reads it; stages only Add.
type Progress struct {
	stage, unit string
	total       atomic.Int64
	done        atomic.Int64
	start       time.Time
	finished    atomic.Bool
}

// Add records n more units done.
func (p *Progress) Add(n int) { p.done.Add(int64(n)) }

// SetTotal changes the total (when it becomes known).
func (p *Progress) SetTotal(n int) { p.total.Store(int64(n)) }

// Done ends the display of this counter.
func (p *Progress) Done() { p.finished.Store(true) }

func (p *Progress) line(width int) string {
	done, total := p.done.Load(), p.total.Load()
	el := time.Since(p.start).Seconds()
	rate := ""
	if el > 0.5 {
		rate = fmt.Sprintf(" %.1f %s/s", float64(done)/el, p.unit)
	}
	if total <= 0 {
		return fmt.Sprintf("%s %d %s%s", p.stage, done, p.unit, rate)
	}
	frac := min(float64(done)/float64(total), 1)
	bar := ""
	if width > 0 {
		n := int(frac * float64(width))
		bar = "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "] "
	}
	return fmt.Sprintf("%s %s%d/%d %s (%.0f%%)%s", p.stage, bar, done, total, p.unit, frac*100, rate)
}

// display renders active progress counters: redrawn in place on a terminal,
// as log lines every interval otherwise.
type display struct {
	mu       sync.Mutex
	active   []*Progress
	tty      bool
	out      io.Writer
	log      *slog.Logger
	interval time.Duration
	stop     chan struct{}
	drawn    bool
}

func newDisplay(out io.Writer, tty bool, log *slog.Logger) *display {
	d := &display{out: out, tty: tty, log: log, interval: 10 * time.Second, stop: make(chan struct{})}
	if tty {
		d.interval = 200 * time.Millisecond
	}
	go d.loop()
	return d
}

func (d *display) add(stage, unit string, total int) *Progress {
	p := &Progress{stage: stage, unit: unit, start: time.Now()}
	p.total.Store(int64(total))
	d.mu.Lock()
	d.active = append(d.active, p)
	d.mu.Unlock()
	return p
}

func (d *display) loop() {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.draw()
		}
	}
}

func (d *display) draw() {
	d.mu.Lock()
	defer d.mu.Unlock()
	var lines []string
	keep := d.active[:0]
	for _, p := range d.active {
		if p.finished.Load() {
			continue
		}
		keep = append(keep, p)
		if d.tty {
			lines = append(lines, p.line(30))
		} else {
			d.log.Info("progress", slog.String("stage", p.stage), slog.String("status", p.line(0)))
		}
	}
	d.active = keep
	if d.tty {
		fmt.Fprint(d.out, "\r\033[K"+strings.Join(lines, " | "))
		d.drawn = len(lines) > 0
	}
}

// endStage drops the counters of a stage that has ended.
func (d *display) endStage(stage string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	for _, p := range d.active {
		if p.stage == stage {
			p.finished.Store(true)
		}
	}
	d.mu.Unlock()
}

// clear erases the progress line before a log line is printed.
func (d *display) clear() {
	if d == nil || !d.tty {
		return
	}
	d.mu.Lock()
	if d.drawn {
		fmt.Fprint(d.out, "\r\033[K")
		d.drawn = false
	}
	d.mu.Unlock()
}

func (d *display) close() {
	close(d.stop)
	d.mu.Lock()
	d.active = nil
	d.mu.Unlock()
	d.clear()
}

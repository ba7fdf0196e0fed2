package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// Record is one line of metrics.jsonl (keys step, loss, val_loss, lr,
// grad_norm, step_seconds, samples_per_sec). ValLoss is set only on steps
// where validation ran. A NaN or infinite value is written as null and read
// back as NaN (see Float).
type Record struct {
	Step          int
	Loss          float64
	ValLoss       *float64
	LR            float64
	GradNorm      float64
	StepSeconds   float64
	SamplesPerSec float64
}

// Log holds the records of a run and writes them to a JSONL file.
type Log struct {
	Path    string
	Records []Record
}

// Open returns a Log writing to path. With resume, records already in path
// are loaded and those after step upTo dropped (they were logged after the
// checkpoint the run resumes from); otherwise the log starts empty.
func Open(path string, resume bool, upTo int) (*Log, error) {
	l := &Log{Path: path}
	if !resume {
		return l, nil
	}
	recs, err := ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Step <= upTo {
			l.Records = append(l.Records, r)
		}
	}
	return l, nil
}

// Add appends a record.
func (l *Log) Add(r Record) { l.Records = append(l.Records, r) }

// SetValLoss records a validation loss at step: on that step's record if it
// is the last one, else on a new record.
func (l *Log) SetValLoss(step int, v float64) {
	if n := len(l.Records); n > 0 && l.Records[n-1].Step == step {
		l.Records[n-1].ValLoss = &v
		return
	}
	l.Records = append(l.Records, Record{Step: step, ValLoss: &v})
}

// Flush atomically rewrites the JSONL file with all records.
func (l *Log) Flush() error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range l.Records {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("metrics step %d: %w", r.Step, err)
		}
	}
	if err := atomicfile.WriteFile(l.Path, buf.Bytes()); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// ReadFile reads a metrics.jsonl file.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer f.Close()
	var recs []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("metrics %s:%d: %w", path, line, err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics %s: %w", path, err)
	}
	return recs, nil
}

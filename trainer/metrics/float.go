package metrics

import (
	"bytes"
	"encoding/json"
	"math"
)

// Float is a float64 that JSON-encodes NaN and ±Inf as null (JSON has no
// such numbers) and decodes null as NaN, so a non-finite loss keeps
// metrics.jsonl valid JSON lines and reads back as not finite.
type Float float64

// MarshalJSON writes null for NaN and ±Inf, else the number.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads null as NaN.
func (f *Float) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*f = Float(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Float(v)
	return nil
}

// wireRecord is Record as written: every float nullable.
type wireRecord struct {
	Step          int    `json:"step"`
	Loss          Float  `json:"loss"`
	ValLoss       *Float `json:"val_loss,omitempty"`
	LR            Float  `json:"lr"`
	GradNorm      Float  `json:"grad_norm"`
	StepSeconds   Float  `json:"step_seconds"`
	SamplesPerSec Float  `json:"samples_per_sec"`
}

// MarshalJSON writes the record with non-finite values as null.
func (r Record) MarshalJSON() ([]byte, error) {
	w := wireRecord{Step: r.Step, Loss: Float(r.Loss), LR: Float(r.LR), GradNorm: Float(r.GradNorm),
		StepSeconds: Float(r.StepSeconds), SamplesPerSec: Float(r.SamplesPerSec)}
	if r.ValLoss != nil {
		v := Float(*r.ValLoss)
		w.ValLoss = &v
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a record; null values become NaN (a val_loss of
// null too: validation ran and was not finite).
func (r *Record) UnmarshalJSON(b []byte) error {
	var w struct {
		wireRecord
		ValLoss json.RawMessage `json:"val_loss"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Record{Step: w.Step, Loss: float64(w.Loss), LR: float64(w.LR), GradNorm: float64(w.GradNorm),
		StepSeconds: float64(w.StepSeconds), SamplesPerSec: float64(w.SamplesPerSec)}
	if len(w.ValLoss) > 0 {
		var v Float
		if err := v.UnmarshalJSON(w.ValLoss); err != nil {
			return err
		}
		f := float64(v)
		r.ValLoss = &f
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// bypassHandler collects every record it gets; installed as slog's default,
// it catches a package that logs around the logger the CLI hands down (the
// test fails when it got any).
type bypassHandler struct {
	mu   *sync.Mutex
	seen *[]string
}

func (h bypassHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h bypassHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.seen = append(*h.seen, r.Message)
	h.mu.Unlock()
	return nil
}
func (h bypassHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h bypassHandler) WithGroup(string) slog.Handler      { return h }

// `--log-format json` of a short training run (synth to train, through the
// CLI) is JSON lines, the training records carry numbers (loss, lr, step),
// and no record reaches slog's default logger.
func TestLogFormatJSONOfATrainingRun(t *testing.T) {
	var mu sync.Mutex
	var bypassed []string
	prev := slog.Default()
	slog.SetDefault(slog.New(bypassHandler{mu: &mu, seen: &bypassed}))
	defer slog.SetDefault(prev)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(cfg, []byte(`workdir: work
stages:
  synth:
    kind: synth
    params: {count: 4, width: 64, height: 48, fps: 6, seconds: 7, seed: 3}
  ingest:
    kind: ingest
    needs: [synth]
  frames:
    kind: frames
    needs: [ingest]
    params: {size: 32}
  pack:
    kind: pack
    needs: [frames]
    params: {val_fraction: 0.25}
  pretrain:
    kind: pretrain
    needs: [pack]
    params: {resolution: 16, batch: 2, steps: 4, cond_gap: 2, checkpoint_every: 2, validate_every: 2, val_batches: 1, log_every: 2, device: auto}
  train:
    kind: train
    needs: [pack, pretrain]
    params: {resolution: 16, frames_length: 4, batch: 1, steps: 3, checkpoint_every: 2, val_batches: 1, log_every: 1}
`), 0o644)
	code, _, stderr := runCLI(t, "run", "--log-format", "json", cfg)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	msgs := map[string]int{}
	for i, line := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		var rec map[string]any
		d := json.NewDecoder(bytes.NewReader([]byte(line)))
		d.UseNumber()
		if err := d.Decode(&rec); err != nil {
			t.Fatalf("stderr line %d is not JSON: %v\n%s", i+1, err, line)
		}
		msg, _ := rec["msg"].(string)
		msgs[msg]++
		for k, v := range rec {
			if s, ok := v.(string); ok && strings.HasPrefix(s, "!ERROR") {
				t.Errorf("line %d: field %s did not encode: %s", i+1, k, s)
			}
		}
		switch msg {
		case "training":
			for _, k := range []string{"step", "steps", "loss", "lr", "grad_norm", "step_seconds"} {
				if _, ok := rec[k].(json.Number); !ok {
					t.Errorf("line %d: %s is %T (%v), want a number:\n%s", i+1, k, rec[k], rec[k], line)
				}
			}
			if j := rec["job"]; j != "pretrain" && j != "train" {
				t.Errorf("line %d: job %v", i+1, j)
			}
		case "validation":
			if _, ok := rec["val_loss"].(json.Number); !ok {
				t.Errorf("line %d: val_loss is %T, want a number:\n%s", i+1, rec["val_loss"], line)
			}
		}
	}
	t.Logf("records by message: %v", msgs)
	// pretrain logs steps 2 and 4, train steps 1 to 3.
	if msgs["training"] != 5 || msgs["validation"] < 2 {
		t.Errorf("records by message: %v", msgs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bypassed) > 0 {
		t.Errorf("%d records bypassed the configured handler: %q", len(bypassed), bypassed)
	}
}

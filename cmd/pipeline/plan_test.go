package main

import (
	"bytes"
	"strings"
	"testing"
)

// pipeline plan prints a line for every stage of configs/sd15-tiny.yaml
// (the tiny model's real files), the GPU ones with an estimate; against a
// card too small for train_sd it names the knob.
func TestPlanPrintsEveryStage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"plan", "../../configs/sd15-tiny.yaml", "--gpu-memory", "1GiB"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	for _, want := range []string{"synth ", "ingest ", "frames ", "pack ", "latents ", "train ", "sample ",
		"against 1GiB (--gpu-memory)", "activations without checkpointing", "gradient checkpointing (block boundaries kept", "host: AdamW moments"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan output lacks %q:\n%s", want, text)
		}
	}
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) > 3 && (f[1] == "train_sd" || f[1] == "sample_sd" || f[1] == "latents") && !strings.Contains(l, "MiB  fits") {
			t.Errorf("tiny stage does not fit 1 GiB: %q", l)
		}
	}
	out.Reset()
	if code := run([]string{"plan", "../../configs/sd15-tiny.yaml", "--gpu-memory", "2MiB"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "does not fit") || !strings.Contains(out.String(), "frames_length") {
		t.Errorf("2 MiB card: no knob named:\n%s", out.String())
	}
	if code := run([]string{"plan", "../../configs/sd15-tiny.yaml", "--gpu-memory", "lots"}, &out, &errb); code != exitUsage {
		t.Errorf("--gpu-memory lots: exit %d", code)
	}
}

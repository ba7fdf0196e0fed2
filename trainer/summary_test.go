package trainer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The train.json of Train and of TrainSD: the shared SummaryResult keeps
// each file's keys in the order the summaries always wrote them (golden
// bytes), and both decode back to what was written.
func TestSummaryJSONKeysAndRoundTrip(t *testing.T) {
	res := &Result{Steps: 6, Loss: 0.5, ValLoss: 0.25, BaselineValLoss: 0.5, SecondsPerStep: 1.5}
	pixel := Summary{Backbone: "b.safetensors", BackboneSHA256: "ab", Shards: "shards",
		SummaryResult: newSummaryResult(res, 64, 3)}
	sd := SDSummary{Family: FamilySD, Model: "sd", ModelSHA256: "cd", Tokenizer: "tok", Latents: "lat",
		GroupNorm: "per_frame", CaptionDropout: 0.1, NoiseSchedule: "scaled_linear", Prediction: SDPredictionEpsilon,
		LatentSize: 8, SummaryResult: newSummaryResult(res, 64, 3), Device: DeviceCPU, Precision: PrecisionFP32,
		Checkpointing: true, Export: VideoModelDir}
	shared := `  "resolution": 64,
  "frames_length": 3,
  "steps": 6,
  "loss": 0.5,
  "val_loss": 0.25,
  "baseline_val_loss": 0.5,
  "val_ratio": 0.5,
  "seconds_per_step": 1.5`
	for _, tc := range []struct {
		name string
		sum  any
		want string
		back any
	}{
		{"Summary", pixel, `{
  "backbone": "b.safetensors",
  "backbone_sha256": "ab",
  "shards": "shards",
` + shared + `
}`, &Summary{}},
		{"SDSummary", sd, `{
  "family": "sd",
  "model": "sd",
  "model_sha256": "cd",
  "tokenizer": "tok",
  "latents": "lat",
  "group_norm": "per_frame",
  "caption_dropout": 0.1,
  "noise_schedule": "scaled_linear",
  "prediction": "epsilon",
  "latent_size": 8,
` + shared + `,
  "device": "cpu",
  "precision": "fp32",
  "checkpointing": true,
  "export": "video-model"
}`, &SDSummary{}},
	} {
		dir := t.TempDir()
		if err := writeSummary(dir, tc.sum); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, SummaryFile))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want+"\n" {
			t.Errorf("%s train.json:\n%s\nwant:\n%s", tc.name, b, tc.want)
		}
		if err := json.Unmarshal(b, tc.back); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := reflect.ValueOf(tc.back).Elem().Interface(); !reflect.DeepEqual(got, tc.sum) {
			t.Errorf("%s round trip: %+v, want %+v", tc.name, got, tc.sum)
		}
	}
	if r := newSummaryResult(&Result{ValLoss: 1}, 64, 3); r.ValRatio != 0 {
		t.Errorf("val_ratio without a baseline = %v, want 0 (the summaries' zero value)", r.ValRatio)
	}
}

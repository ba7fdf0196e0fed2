package trainer

import (
	"context"
	"strings"
	"testing"
)

// Train and TrainSD share the clip length's default and check: 0 means
// 25, fewer than 2 frames is refused before anything is read.
func TestFramesLengthDefaultAndCheck(t *testing.T) {
	n := 0
	if err := framesLengthDefault(&n); err != nil || n != 25 {
		t.Errorf("0 became %d (%v), want 25", n, err)
	}
	n = 2
	if err := framesLengthDefault(&n); err != nil || n != 2 {
		t.Errorf("2 became %d (%v)", n, err)
	}
	common := Common{Shards: t.TempDir(), OutDir: t.TempDir(), Resolution: 16, Batch: 1, Steps: 1, LR: 1e-3}
	want := "train: frames_length 1: want at least 2"
	_, err := Train(context.Background(), TrainOptions{Common: common, Backbone: "missing.safetensors", FramesLength: 1})
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Train with 1 frame: %v, want %q", err, want)
	}
	_, err = TrainSD(context.Background(), SDTrainOptions{Common: common, Model: "missing", FramesLength: 1})
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("TrainSD with 1 frame: %v, want %q", err, want)
	}
}

package stages

import (
	"bytes"
	"context"
	"image/gif"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
	"github.com/timelapse-ml/pipeline/trainer"
)

// loadSD15Tiny loads configs/sd15-tiny.yaml as a user runs it (paths
// relative to configs/), with its workdir in a temporary folder.
func loadSD15Tiny(t *testing.T, workdir string) *pipeline.Config {
	t.Helper()
	src, err := os.ReadFile("../configs/sd15-tiny.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src = regexp.MustCompile(`(?m)^workdir: .*$`).ReplaceAll(src, []byte("workdir: "+workdir))
	dir, _ := filepath.Abs("../configs")
	cfg, err := pipeline.Load("sd15-tiny.yaml", dir, src, pipeline.NewRegistry(All()))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSD15TinyConfig runs configs/sd15-tiny.yaml through every stage
// (synth, ingest, frames, pack, latents, train_sd, sample_sd) on the tiny
// SD model, with a Ctrl-C (context cancel) in train at step 4: the rerun
// resumes at step 4 and re-runs nothing upstream, the sample GIF has the
// configured frames, the preview GIF and the exported video model are
// there; a forced straight re-run of train ends on the same bytes, and
// verify passes (checkpoints decode, the export opens, the GIF decodes).
func TestSD15TinyConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole SD flow (about a minute on 2 cores)")
	}
	cfg := loadSD15Tiny(t, filepath.Join(t.TempDir(), "work"))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := &recorder{cancel: cancel, cancelOn: "training job=train step=4"}
	if _, err := runWith(t, cfg, rec, ctx); err == nil {
		t.Fatal("the interrupted run did not fail")
	}
	if s := rec.find("interrupted; saving a checkpoint"); s != "interrupted; saving a checkpoint step=4" {
		t.Fatalf("interrupted run logged %q", s)
	}
	rec = &recorder{}
	res, err := runWith(t, cfg, rec, t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ran := pipelinetest.Ran(res); len(ran) != 2 || ran[0] != "train" || ran[1] != "sample" {
		t.Errorf("rerun ran %v, want train and sample", ran)
	}
	if l := rec.find("resuming"); l != "resuming step=4" {
		t.Errorf("rerun logged %q, want resuming step=4", l)
	}
	work := cfg.Workdir
	b := pipelinetest.ReadFile(t, filepath.Join(work, "sample", trainer.SampleGIF))
	g, err := gif.DecodeAll(bytes.NewReader(b))
	if err != nil || len(g.Image) != 16 {
		t.Fatalf("sample.gif: %v, %d frames", err, len(g.Image))
	}
	for _, f := range []string{"sample/" + trainer.SampleSheet, "train/previews/step-000012.gif",
		"train/" + trainer.VideoModelDir + "/unet/config.json", "train/" + trainer.SummaryFile} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Error(err)
		}
	}
	resumed := trainOutputs(t, filepath.Join(work, "train"))
	if _, err := pipeline.New(cfg, pipeline.Options{Stages: []string{"train"}}).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	straight := trainOutputs(t, filepath.Join(work, "train"))
	for f := range straight {
		if !bytes.Equal(straight[f], resumed[f]) {
			t.Errorf("%s of the interrupted and resumed run differs from a straight run's", f)
		}
	}
	rep, err := pipeline.New(cfg, pipeline.Options{}).Verify(t.Context())
	if err != nil || len(rep.Findings) > 0 {
		t.Errorf("verify: %v %v", err, rep.Findings)
	}
}

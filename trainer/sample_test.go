package trainer

import (
	"bytes"
	"context"
	"image"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/internal/testenv"
	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
)

// trained returns a temporal checkpoint of a few steps over the fixture.
func trained(t *testing.T) TrainOptions {
	o := trainOpts(t, 2)
	if _, err := Train(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestSampleFromValidationFrame(t *testing.T) {
	testenv.SkipUnderRace(t)
	o := trained(t)
	out := t.TempDir()
	res, err := Sample(context.Background(), SampleOptions{
		Temporal: filepath.Join(o.OutDir, TemporalFile), Backbone: o.Backbone, Shards: o.Shards,
		Frames: 120, Steps: 1, Seed: 1, Scale: 2, OutDir: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resolution != 16 || !strings.HasPrefix(res.Source, "shards:") {
		t.Errorf("result %+v", res)
	}
	checkSampleReport(t, out, res)
	b, err := os.ReadFile(filepath.Join(out, SampleGIF))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gif.DecodeAll(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Image) != 120 || g.Config.Width != 32 {
		t.Errorf("gif has %d frames of width %d, want 120 of 32", len(g.Image), g.Config.Width)
	}
	for _, f := range []string{SampleMP4, SampleSheet, SampleStill} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestSampleStillImageAnySize(t *testing.T) {
	o := trained(t)
	still := filepath.Join(t.TempDir(), "still.png")
	f, _ := os.Create(still)
	png.Encode(f, cloudFrame(0, 1, 50).(*image.NRGBA).SubImage(image.Rect(0, 0, 50, 30)))
	f.Close()
	out := t.TempDir()
	res, err := Sample(context.Background(), SampleOptions{
		Temporal: filepath.Join(o.OutDir, TemporalFile), Backbone: o.Backbone, Image: still,
		Frames: 3, Steps: 2, OutDir: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Source != still || res.Frames != 3 {
		t.Errorf("result %+v", res)
	}
}

func TestSampleRefusesOtherBackbone(t *testing.T) {
	o := trained(t)
	// Another backbone: the same tensors with one value changed.
	bb, err := checkpoint.Read(o.Backbone)
	if err != nil {
		t.Fatal(err)
	}
	for name, tn := range bb.Tensors {
		tn.Data[0] += 1
		bb.Tensors[name] = tn
		break
	}
	other := filepath.Join(t.TempDir(), "other.safetensors")
	if err := checkpoint.Write(other, bb); err != nil {
		t.Fatal(err)
	}
	h1, _ := checkpoint.FileHash(o.Backbone)
	h2, _ := checkpoint.FileHash(other)
	_, err = Sample(context.Background(), SampleOptions{
		Temporal: filepath.Join(o.OutDir, TemporalFile), Backbone: other, Shards: o.Shards, Frames: 2, Steps: 1, OutDir: t.TempDir(),
	})
	if err == nil || !strings.Contains(err.Error(), checkpoint.Short(h1)) || !strings.Contains(err.Error(), checkpoint.Short(h2)) {
		t.Fatalf("err = %v, want one naming both backbone hashes %s and %s", err, checkpoint.Short(h1), checkpoint.Short(h2))
	}

	// Resuming a train run onto the other backbone fails the same way.
	o2 := o
	o2.Backbone, o2.Resume = other, true
	_, err = Train(context.Background(), o2)
	if err == nil || !strings.Contains(err.Error(), checkpoint.Short(h1)) || !strings.Contains(err.Error(), checkpoint.Short(h2)) {
		t.Fatalf("resume onto another backbone: err = %v, want both hashes", err)
	}
}

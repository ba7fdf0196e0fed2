package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/gif"
	imgpng "image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/internal/testenv"
	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// sdTiny is the tiny SD-1.5-architecture inpainting model folder (links to
// the fixtures of trainer/weights and trainer/tokenizer; see
// configs/testdata/PROVENANCE).
const sdTiny = "../configs/testdata/sd15-tiny"

// writeSDLatents writes a latents folder for the tiny model: videos of
// frames latents of 4x8x8 (means drifting smoothly from frame to frame,
// log-variance -6) with (77, 16) text embeddings; the last video is the
// validation split.
func writeSDLatents(t testing.TB, videos, frames int) string {
	t.Helper()
	dir := t.TempDir()
	spec := shards.LatentShardSpec{Dtype: shards.DtypeFloat32, LatentShape: []int{4, 8, 8}, TextShape: []int{77, 16}}
	ix := &shards.LatentIndex{Format: shards.LatentFormat, Dtype: spec.Dtype, LatentShape: spec.LatentShape,
		TextShape: spec.TextShape, ScalingFactor: 0.18215, Split: shards.Split{Train: []string{}, Val: []string{}}}
	w, err := shards.CreateLatentShard(shards.DirOutput(dir), shards.ShardName(0), spec)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for v := 0; v < videos; v++ {
		lv := shards.LatentVideo{ID: "vid" + string(rune('a'+v)), Caption: "clouds", Text: make([]float32, 77*16)}
		for i := range lv.Text {
			lv.Text[i] = float32(rng.NormFloat64())
		}
		base := make([]float32, 256)
		for i := range base {
			base[i] = float32(rng.NormFloat64() * 4)
		}
		for f := 0; f < frames; f++ {
			m, l := make([]float32, 256), make([]float32, 256)
			for i := range m {
				m[i] = base[i] + 0.3*float32(f)*float32(math.Sin(float64(i)))
				l[i] = -6
			}
			lv.Mean, lv.LogVar = append(lv.Mean, m), append(lv.LogVar, l)
		}
		if err := w.Add(lv); err != nil {
			t.Fatal(err)
		}
		split := shards.SplitTrain
		if v == videos-1 {
			split = shards.SplitVal
			ix.Split.Val = append(ix.Split.Val, lv.ID)
		} else {
			ix.Split.Train = append(ix.Split.Train, lv.ID)
		}
		ix.Videos = append(ix.Videos, shards.LatentVideoEntry{ID: lv.ID, Frames: frames, Shard: 0, Split: split, Caption: lv.Caption, CaptionFrom: "prompt"})
	}
	info, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	ix.Shards = append(ix.Shards, shards.LatentShardInfo{ShardInfo: info, Fingerprint: strings.Repeat("0", 64)})
	if err := shards.WriteLatentIndex(shards.DirOutput(dir), ix); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sdTrainOpts(t *testing.T, latents string, steps int) SDTrainOptions {
	return SDTrainOptions{
		Common: Common{Shards: latents, OutDir: t.TempDir(), Batch: 1, Steps: steps, LR: 1e-3, WarmupSteps: 2, Cosine: true,
			WeightDecay: 0.01, GradClip: 1, Seed: 3, CheckpointEvery: 100, ValidateEvery: 3, ValBatches: 1, LogEvery: 2,
			Log: testLog(t)},
		Model: sdTiny, FramesLength: 3, CaptionDropout: 0.5,
	}
}

// TestTrainSDResumeIsExact: the SD family trains through the pixel
// trainer's loop: a run cancelled after step 3 (Ctrl-C) and resumed ends
// bit for bit where a straight run ends; only temporal tensors are
// checkpointed and they moved; the baseline (step 0) validation is the
// backbone frame by frame; the exported video model loads back as the
// recipe's pseudo-3D UNet with the trained temporal values.
func TestTrainSDResumeIsExact(t *testing.T) {
	testenv.SkipUnderRace(t)
	latents := writeSDLatents(t, 3, 5)
	straight := sdTrainOpts(t, latents, 6)
	res, err := TrainSD(context.Background(), straight)
	if err != nil {
		t.Fatal(err)
	}
	if !(res.BaselineValLoss > 0) || math.IsNaN(res.ValLoss) || math.IsNaN(res.Loss) {
		t.Fatalf("result %+v", res)
	}

	split := sdTrainOpts(t, latents, 6)
	ctx, cancel := context.WithCancel(context.Background())
	split.afterStep = func(_ *session, step int) {
		if step == 3 {
			cancel()
		}
	}
	if res, err := TrainSD(ctx, split); !errors.Is(err, context.Canceled) || res.Steps != 3 {
		t.Fatalf("interrupted run: %v after step %d, want context.Canceled after 3", err, res.Steps)
	}
	split.afterStep, split.Resume, split.LogEvery = nil, true, 5
	if res, err := TrainSD(context.Background(), split); err != nil || res.ResumedFrom != 3 {
		t.Fatalf("resume: %v (from %v)", err, res)
	}
	a := readTensors(t, filepath.Join(straight.OutDir, TemporalFile))
	b := readTensors(t, filepath.Join(split.OutDir, TemporalFile))
	sameTensors(t, "straight vs resumed", a, b)
	sm, err := openSD(sdTiny, sdLoad{})
	if err != nil {
		t.Fatal(err)
	}
	sm.UNet.Params.InitTemporal(uint64(straight.Seed))
	moved := false
	for name, ta := range a.Tensors {
		if !model.IsTemporal(name) {
			t.Errorf("temporal.safetensors holds %s", name)
		}
		init := sm.UNet.Params.Get(name)
		for i := range ta.Data {
			moved = moved || ta.Data[i] != init.Data[i]
		}
	}
	if !moved {
		t.Error("no temporal value moved in 6 steps")
	}
	if a.Metadata[MetaPrediction] != "epsilon" || a.Metadata[MetaNoiseSchedule] != "scaled_linear" {
		t.Errorf("objective recorded as %q on %q", a.Metadata[MetaPrediction], a.Metadata[MetaNoiseSchedule])
	}

	var sum SDSummary
	raw, err := os.ReadFile(filepath.Join(straight.OutDir, SummaryFile))
	if err == nil {
		err = json.Unmarshal(raw, &sum)
	}
	if err != nil || sum.Family != FamilySD || sum.Steps != 6 || sum.FramesLength != 3 || sum.LatentSize != 8 || sum.Resolution != 64 {
		t.Fatalf("train.json: %v %+v", err, sum)
	}
	exp, err := model.LoadUNet(filepath.Join(straight.OutDir, VideoModelDir), weights.Options{}, model.UNetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Options.Pseudo3D || exp.Options.GroupNorm != model.GroupNormPerFrame {
		t.Fatalf("export loads as %+v", exp.Options)
	}
	for name, ta := range a.Tensors {
		got := exp.Params.Get(name)
		for i := range ta.Data {
			// exported in float16
			if d := math.Abs(float64(got.Data[i] - ta.Data[i])); d > 1e-3*math.Max(1, math.Abs(float64(ta.Data[i]))) {
				t.Fatalf("export %s[%d] = %v, trained %v", name, i, got.Data[i], ta.Data[i])
			}
		}
	}
}

// TestSampleSD120Frames: a still image (PNG) animated into 120 frames with
// guidance and eta > 0 (240 frames through the UNet per step), decoded in
// batches: a GIF of 120 frames at the training resolution, the contact
// sheet and the still; a still from the latents (no image) works too and
// a checkpoint of other model files is refused.
func TestSampleSD120Frames(t *testing.T) {
	testenv.SkipUnderRace(t)
	latents := writeSDLatents(t, 2, 4)
	o := sdTrainOpts(t, latents, 1)
	o.ValBatches = 1
	if _, err := TrainSD(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(t.TempDir(), "still.png")
	f, err := os.Create(png)
	if err == nil {
		err = imgpng.Encode(f, cloudFrame(1, 1, 80))
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	so := SDSampleOptions{Model: sdTiny, Temporal: filepath.Join(o.OutDir, TemporalFile), Image: png,
		Prompt: "clouds over hills", NegativePrompt: "blurry", Guidance: 7.5, Eta: 0.5, Frames: 120, Steps: 2, Seed: 1,
		DecodeBatch: 16, OutDir: t.TempDir(), Log: testLog(t)}
	res, err := SampleSD(context.Background(), so)
	if err != nil {
		t.Fatal(err)
	}
	if res.Frames != 120 || res.Resolution != 64 {
		t.Fatalf("result %+v", res)
	}
	b, err := os.ReadFile(filepath.Join(so.OutDir, SampleGIF))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gif.DecodeAll(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Image) != 120 || g.Config.Width < 64 {
		t.Fatalf("GIF of %d frames, %dx%d", len(g.Image), g.Config.Width, g.Config.Height)
	}
	for _, f := range []string{SampleSheet, SampleStill} {
		if _, err := os.Stat(filepath.Join(so.OutDir, f)); err != nil {
			t.Error(err)
		}
	}
	so.Image, so.Latents, so.Frames, so.Guidance, so.Eta, so.OutDir = "", latents, 4, 1, 0, t.TempDir()
	if res, err := SampleSD(context.Background(), so); err != nil || res.Source != "latents:vidb:1" {
		t.Fatalf("from latents: %v %+v", err, res)
	}
	other := t.TempDir() // the recipe's pseudo-3D UNet with the same VAE and text encoder
	for dst, src := range map[string]string{"unet": "../trainer/weights/testdata/sd-tiny-pseudo3d/unet",
		"vae": sdTiny + "/vae", "text_encoder": sdTiny + "/text_encoder", "tokenizer": sdTiny + "/tokenizer"} {
		abs, _ := filepath.Abs(filepath.Join("..", "trainer", src))
		if err := os.Symlink(abs, filepath.Join(other, dst)); err != nil {
			t.Fatal(err)
		}
	}
	so.Model = other
	if _, err := SampleSD(context.Background(), so); err == nil || !strings.Contains(err.Error(), "was trained on model files") {
		t.Fatalf("checkpoint of another model: %v", err)
	}
}

package stages

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/tokenizer"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// tinySD lays out an SD model folder from the fixtures other packages test
// with (shared/sd-golden's tiny seeded SD-1.5-architecture model, see
// trainer/weights/testdata/PROVENANCE, and CLIP's real tokenizer): the
// parts named in parts, of vae, text_encoder, tokenizer.
func tinySD(t *testing.T, parts ...string) string {
	t.Helper()
	src := map[string]string{
		"vae":          "../trainer/weights/testdata/sd-tiny/vae",
		"text_encoder": "../trainer/weights/testdata/sd-tiny/text_encoder",
		"tokenizer":    "../trainer/tokenizer/testdata",
	}
	dir := filepath.Join(t.TempDir(), "sd")
	os.Mkdir(dir, 0o755)
	for _, p := range parts {
		abs, err := filepath.Abs(src[p])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func latentsYAML(modelDir, extra string, size int) string {
	return `stages:
  videos:
    kind: synth
    params: {count: 3, width: 64, height: 48, fps: 6, seconds: 7, seed: 3}
  ingest:
    kind: ingest
    needs: [videos]
  frames:
    kind: frames
    needs: [ingest]
    params: {size: ` + strconv.Itoa(size) + `}
  pack:
    kind: pack
    needs: [frames]
    params: {shard_mb: 1, val_fraction: 0.34}
  latents:
    kind: latents
    needs: [pack, frames]
    params: {model: ` + modelDir + `, shard_frames: 20, prompt: "a timelapse of clouds"` + extra + `}
`
}

var latentKinds = []pipeline.Kind{SynthKind(), IngestKind(), FramesKind(), PackKind(), LatentsKind()}

// TestLatentsStage: synth -> ingest -> frames -> pack -> latents on the tiny
// SD model; a run killed after its first shard resumes without encoding it
// again; the latents equal the VAE's on the packed frames; captions from
// files beside the sources (a long one truncated, a non-UTF-8 one
// replaced by the prompt, each named); a flipped byte caught by Verify.
func TestLatentsStage(t *testing.T) {
	sd := tinySD(t, "vae", "text_encoder", "tokenizer")
	p := pipelinetest.New(t, latentKinds, latentsYAML(sd, ", captions: true", 32))
	p.Run(pipeline.Options{Stages: []string{"pack"}})

	// captions beside the sources: one long, one not UTF-8, one missing
	fv, err := frames.ReadIndex(p.Dir("frames"))
	if err != nil || len(fv) != 3 {
		t.Fatalf("frames index: %v %v", fv, err)
	}
	slices.SortFunc(fv, func(a, b frames.Video) int { return strings.Compare(a.ID, b.ID) })
	caption := func(v frames.Video) string { return strings.TrimSuffix(v.Source, filepath.Ext(v.Source)) + ".txt" }
	long := strings.Repeat("clouds ", 90)
	os.WriteFile(caption(fv[0]), []byte(long), 0o644)
	os.WriteFile(caption(fv[1]), []byte("bad \xff\xfe caption"), 0o644)

	// a run stopped after its first shard
	ctx, cancel := context.WithCancel(context.Background())
	var encoded []string
	onLatentShard = func(f string) { encoded = append(encoded, f); cancel() }
	t.Cleanup(func() { onLatentShard = nil })
	if _, err := p.TryRun(ctx, pipeline.Options{}); err == nil {
		t.Fatal("the cancelled run succeeded")
	}
	if len(encoded) != 1 {
		t.Fatalf("first run encoded %v", encoded)
	}
	first := encoded[0]
	encoded = nil
	onLatentShard = func(f string) { encoded = append(encoded, f) }
	res := p.Run(pipeline.Options{})
	if !slices.Contains(pipelinetest.Ran(res), "latents") {
		t.Fatalf("latents did not run: %v", pipelinetest.Ran(res))
	}
	if len(encoded) != 2 || slices.Contains(encoded, first) {
		t.Fatalf("resumed run encoded %v (the first run finished %s)", encoded, first)
	}
	var reports []string
	for _, r := range res {
		if r.Stage == "latents" {
			reports = r.Reports
		}
	}
	joined := strings.Join(reports, "\n")
	for _, want := range []string{"3 videos", "cut to 75 tokens", fv[0].ID, caption(fv[1]), "not UTF-8"} {
		if !strings.Contains(joined, want) {
			t.Errorf("reports lack %q:\n%s", want, joined)
		}
	}

	dir := p.Dir("latents")
	ld, err := shards.OpenLatents(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	ix := ld.Index
	if len(ix.Shards) != 3 || ix.Dtype != shards.DtypeFloat16 || !slices.Equal(ix.LatentShape, []int{4, 4, 4}) ||
		!slices.Equal(ix.TextShape, []int{77, 16}) || ix.ScalingFactor != 0.18215 {
		t.Fatalf("index: %+v", ix)
	}
	pack, err := shards.Open(p.Dir("pack"))
	if err != nil {
		t.Fatal(err)
	}
	defer pack.Close()
	if !slices.Equal(ix.Split.Val, pack.Index.Split.Val) || !slices.Equal(ix.Split.Train, pack.Index.Split.Train) {
		t.Errorf("split %+v, pack's %+v", ix.Split, pack.Index.Split)
	}
	byID := map[string]shards.LatentVideoEntry{}
	for _, v := range ld.Videos("") {
		byID[v.ID] = v
	}
	if v := byID[fv[0].ID]; !v.Truncated || v.Caption != strings.TrimSpace(long) || v.CaptionFrom != caption(fv[0]) {
		t.Errorf("long caption entry %+v", v)
	}
	if v := byID[fv[1].ID]; v.Caption != "a timelapse of clouds" || v.CaptionFrom != "prompt" {
		t.Errorf("non-UTF-8 caption entry %+v", v)
	}

	// the stored latents are the VAE's of the packed frames, the text
	// embedding the text encoder's of the caption (float16 rounding)
	m, err := weights.Open(sd)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	vae, err := model.OpenVAE(m)
	if err != nil {
		t.Fatal(err)
	}
	te, err := model.OpenCLIPText(m)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := tokenizer.Load(filepath.Join(sd, "tokenizer"))
	v := fv[2]
	img, err := pack.Frame(v.ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 3*32*32)
	shards.ToTensor(x, img, 32)
	wantMean, wantLV, err := vae.Encode(x, 1, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	mean, lv := make([]float32, 64), make([]float32, 64)
	if err := ld.Latent(mean, lv, v.ID, 3); err != nil {
		t.Fatal(err)
	}
	near(t, "mean", mean, wantMean)
	near(t, "logvar", lv, wantLV)
	ids, _ := tok.Encode("a timelapse of clouds")
	wantText, err := te.Encode([][]int{ids})
	if err != nil {
		t.Fatal(err)
	}
	text := make([]float32, 77*16)
	if err := ld.Text(text, v.ID); err != nil {
		t.Fatal(err)
	}
	near(t, "text", text, wantText)

	// up to date: nothing runs; a changed caption makes a plain run
	// re-encode its video's shard only; a flipped byte is caught by verify
	if ran := pipelinetest.Ran(p.Run(pipeline.Options{})); slices.Contains(ran, "latents") {
		t.Errorf("second run re-ran latents: %v", ran)
	}
	os.WriteFile(caption(fv[2]), []byte("storm clouds"), 0o644)
	encoded = nil
	// a plain run sees the edit (the caption files are in the key) and
	// re-runs latents alone
	if ran := pipelinetest.Ran(p.Run(pipeline.Options{})); !slices.Equal(ran, []string{"latents"}) {
		t.Errorf("after a caption edit the run ran %v, want [latents]", ran)
	}
	if want := shards.ShardName(byID[fv[2].ID].Shard); !slices.Equal(encoded, []string{want}) {
		t.Errorf("after a caption change the run encoded %v, want [%s]", encoded, want)
	}
	ld2, err := shards.OpenLatents(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v := ld2.Videos("")[slices.IndexFunc(ld2.Videos(""), func(e shards.LatentVideoEntry) bool { return e.ID == fv[2].ID })]; v.Caption != "storm clouds" {
		t.Errorf("caption after the change: %+v", v)
	}
	ld2.Close()
	verify := LatentsKind().Verify
	if err := verify(context.Background(), dir, nil); err != nil {
		t.Fatalf("verify intact: %v", err)
	}
	shard := filepath.Join(dir, shards.ShardName(1))
	b := pipelinetest.ReadFile(t, shard)
	b[len(b)/2] ^= 1
	os.WriteFile(shard, b, 0o644)
	if err := verify(context.Background(), dir, nil); err == nil || !strings.Contains(err.Error(), shards.ShardName(1)) {
		t.Errorf("verify after a flipped byte: %v", err)
	}
}

func near(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 2e-3*math.Max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("%s[%d] = %v, want %v (float16 rounding)", what, i, got[i], want[i])
		}
	}
}

// TestLatentsBadInput: frames whose size is not a multiple of 8, a model
// folder without a tokenizer (no tokenizer param) and one without a VAE:
// each fails its stage with an error naming the video or the folder, and
// the other stages go on.
func TestLatentsBadInput(t *testing.T) {
	noTok := tinySD(t, "vae", "text_encoder")
	noVAE := tinySD(t, "text_encoder", "tokenizer")
	good := tinySD(t, "vae", "text_encoder", "tokenizer")
	single := filepath.Join(t.TempDir(), "sd.safetensors")
	b, err := os.ReadFile("../trainer/weights/testdata/sd-tiny-ldm.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(single, b, 0o644)
	yaml := `stages:
  videos:
    kind: synth
    params: {count: 2, width: 64, height: 48, fps: 6, seconds: 6, seed: 5}
  ingest:
    kind: ingest
    needs: [videos]
  frames:
    kind: frames
    needs: [ingest]
    params: {size: 36}
  pack:
    kind: pack
    needs: [frames]
  odd_size:
    kind: latents
    needs: [pack]
    params: {model: ` + good + `}
  no_tokenizer:
    kind: latents
    needs: [pack]
    params: {model: ` + noTok + `}
  single_file:
    kind: latents
    needs: [pack]
    params: {model: ` + single + `}
  no_vae:
    kind: latents
    needs: [pack]
    params: {model: ` + noVAE + `}
  captions_without_frames:
    kind: latents
    needs: [pack]
    params: {model: ` + good + `, captions: true}
`
	p := pipelinetest.New(t, latentKinds, yaml)
	p.Run(pipeline.Options{Stages: []string{"pack"}})
	ids, err := frames.ReadIndex(p.Dir("frames"))
	if err != nil || len(ids) != 2 {
		t.Fatalf("frames %v %v", ids, err)
	}
	for stage, wants := range map[string][]string{
		"odd_size":                {"no video", "can be encoded", ids[0].ID, "36x36", "not a multiple of 8"},
		"no_tokenizer":            {noTok, "tokenizer"},
		"single_file":             {single, "single file", "tokenizer param"},
		"no_vae":                  {noVAE, "no VAE"},
		"captions_without_frames": {"captions needs the frames stage"},
	} {
		_, err := p.TryRun(context.Background(), pipeline.Options{Stages: []string{stage}})
		if err == nil {
			t.Errorf("%s: no error", stage)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", stage, err, w)
			}
		}
	}
}

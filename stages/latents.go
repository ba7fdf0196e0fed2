package stages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/internal/blobstore"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/tokenizer"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// LatentsKind encodes the frames of the pack it needs with an SD model's
// VAE and each video's caption with its CLIP text encoder, into latent
// shards (package shards, latent format), one cached item per shard.
func LatentsKind() pipeline.Kind {
	return pipeline.Kind{
		Name:    "latents",
		Version: "1",
		Doc: "Encodes every packed frame with the model's VAE encoder (the diagonal Gaussian's mean and " +
			"log-variance, before the scaling factor) and every video's caption with its CLIP text encoder " +
			"(last_hidden_state, 77 tokens), into Arrow IPC latent shards (shard-00000.arrow...: one row per frame, " +
			"the caption and text embedding on each video's first row) and index.json (shapes, dtype, scaling " +
			"factor, checksums, the pack's train/val split). Each shard is cached by its videos' frame bytes, " +
			"captions, the model files and the params; a killed run resumes at the first unfinished shard. " +
			"Needs a pack stage (or the shards param), and its frames stage too when captions is set. Verify re-checks every shard.",
		Params: []pipeline.ParamSpec{
			{Name: "model", Type: pipeline.Path, Required: true,
				Doc: "an SD model: a diffusers folder (vae/, text_encoder/, tokenizer/) or an original-layout single file"},
			shardsParam("pack"),
			{Name: "tokenizer", Type: pipeline.Path,
				Doc: "a CLIP tokenizer folder (vocab.json, merges.txt); unset: the model folder's tokenizer/ (a single file has none)"},
			{Name: "prompt", Type: pipeline.String, Default: "",
				Doc: "the caption of every video that has none of its own"},
			{Name: "captions", Type: pipeline.Bool, Default: false,
				Doc: "read each video's caption from a UTF-8 <name>.txt beside its source video (needs the frames stage among needs)"},
			{Name: "shard_frames", Type: pipeline.Int, Default: 4096, Min: pipeline.Bound(1), Max: pipeline.Bound(1 << 20),
				Doc: "frames per latent shard at most (a longer video gets a shard of its own; videos are never split)"},
			{Name: "precision", Type: pipeline.String, Default: shards.DtypeFloat16, Enum: []string{shards.DtypeFloat16, shards.DtypeFloat32},
				Doc: "stored precision of latents and text embeddings (computed in float32)"},
			{Name: "batch", NoKey: true, Type: pipeline.Int, Default: 8, Min: pipeline.Bound(1), Max: pipeline.Bound(1024),
				Doc: "frames encoded per VAE call"},
			{Name: "device", NoKey: true, Type: pipeline.String, Default: "auto", Enum: []string{"auto", "cpu", "cuda"},
				Doc: "where the VAE encoder and text encoder run: cuda on the GPU (trainer/gpu's SD executor, batch frames per pass), cpu on the interpreter (tests, tiny data), auto the GPU when one is usable"},
			{Name: "compute", Type: pipeline.String, Default: string(trainer.PrecisionTF32), Enum: trainer.Precisions,
				Doc: "arithmetic of the GPU passes: fp32, tf32 (TF32 tensor-core products), bf16 (bfloat16 weights and products, float32 accumulation), fp16; the CPU computes in fp32 (and says so)"},
		},
		InputsFromNeeds: captionFiles,
		ListURL:         blobstore.ListingDigest,
		Run:             runLatents,
		Verify:          func(_ context.Context, dir string, _ pipeline.Params) error { return shards.VerifyLatents(dir) },
	}
}

// onLatentShard, when set (tests), is called after each shard is encoded.
var onLatentShard func(file string)

// latentVideo is one video to encode.
type latentVideo struct {
	shards.LatentVideoEntry
	size    int    // frame side in pixels
	content string // SHA-256 of its frames' JPEG bytes
}

func runLatents(ctx context.Context, r *pipeline.StageRun) error {
	packDir, err := shardsInput(ctx, r, "pack")
	if err != nil {
		return err
	}
	if packDir == "" {
		return fmt.Errorf("latents: needs a pack stage or the shards param (needs: %v)", r.Needs)
	}
	framesDir, err := needOfKind(r, "frames")
	if err != nil {
		return err
	}
	p := r.Params
	modelPath := p.String("model")
	tokDir := modelPath
	if p.Has("tokenizer") {
		tokDir = p.String("tokenizer")
	}
	tokDir, err = tokenizer.Find(tokDir)
	if err != nil {
		return fmt.Errorf("latents: %w (set the tokenizer param to a tokenizer folder)", err)
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		return fmt.Errorf("latents: %w", err)
	}
	m, err := weights.Open(modelPath)
	if err != nil {
		return fmt.Errorf("latents: %w", err)
	}
	defer m.Close()
	vae, err := model.OpenVAE(m)
	if err != nil {
		return fmt.Errorf("latents: %w", err)
	}
	te, err := model.OpenCLIPText(m)
	if err != nil {
		return fmt.Errorf("latents: %w", err)
	}
	modelFP, err := filesFingerprint(append(append([]string{}, m.Files...), filepath.Join(tokDir, "vocab.json"), filepath.Join(tokDir, "merges.txt")))
	if err != nil {
		return fmt.Errorf("latents: %w", err)
	}

	ds, err := shards.Open(packDir)
	if err != nil {
		return fmt.Errorf("latents: input of the pack stage: %w", err)
	}
	defer ds.Close()
	sources := map[string]string{}
	if p.Bool("captions") {
		if framesDir == "" {
			return fmt.Errorf("latents: captions needs the frames stage among needs (to find each video's source; needs: %v)", r.Needs)
		}
		fv, err := frames.ReadIndex(framesDir)
		if err != nil {
			return fmt.Errorf("latents: %w", err)
		}
		for _, v := range fv {
			sources[v.ID] = v.Source
		}
	}

	f := vae.Config.Downscale()
	var todo []latentVideo
	var skipped []string
	for _, v := range ds.Videos("") {
		lv, err := planLatentVideo(ds, v, f)
		if err == nil && len(todo) > 0 && lv.size != todo[0].size {
			err = fmt.Errorf("frames are %dx%d, those of %s %dx%d: a latents folder holds one size", lv.size, lv.size, todo[0].ID, todo[0].size, todo[0].size)
		}
		if err != nil {
			r.Log.Warn("video skipped", "video", v.ID, "error", err.Error())
			skipped = append(skipped, fmt.Sprintf("skipped %s: %v", v.ID, err))
			continue
		}
		lv.Caption, lv.CaptionFrom = p.String("prompt"), "prompt"
		if src, ok := sources[v.ID]; ok {
			if text, path, ok := readCaption(r, src); ok {
				lv.Caption, lv.CaptionFrom = text, path
			}
		}
		if _, cut := tok.Encode(lv.Caption); cut {
			lv.Truncated = true
			r.Log.Warn("caption truncated", "video", v.ID, "from", lv.CaptionFrom, "tokens", len(tok.Tokens(lv.Caption)), "max", tokenizer.MaxLength-2)
			skipped = append(skipped, fmt.Sprintf("caption of %s (%s) cut to %d tokens", v.ID, lv.CaptionFrom, tokenizer.MaxLength-2))
		}
		todo = append(todo, lv)
	}
	if len(todo) == 0 {
		return fmt.Errorf("latents: no video of %s can be encoded: %s", packDir, strings.Join(skipped[:min(3, len(skipped))], "; "))
	}
	groups := groupLatentVideos(todo, p.Int("shard_frames"))
	size := todo[0].size
	latentShape := []int{vae.Config.LatentChannels, size / f, size / f}
	textShape := []int{te.Config.MaxPositions, te.Config.HiddenSize}
	dtype := p.String("precision")
	params, _ := json.Marshal(map[string]any{"model": modelPath, "tokenizer": tokDir, "precision": dtype, "scaling_factor": vae.Config.ScalingFactor})
	spec := shards.LatentShardSpec{Dtype: dtype, LatentShape: latentShape, TextShape: textShape,
		Metadata: map[string]string{shards.MetaLatentModel: string(params)}}

	ix := &shards.LatentIndex{Format: shards.LatentFormat, Dtype: dtype, LatentShape: latentShape, TextShape: textShape,
		ScalingFactor: vae.Config.ScalingFactor, Split: shards.Split{Train: []string{}, Val: []string{}}}
	prog := r.Progress("frames", func() int {
		n := 0
		for _, v := range todo {
			n += v.Frames
		}
		return n
	}())
	defer prog.Done()
	start := time.Now()
	sde, err := trainer.NewSDEncoder(vae, te, size, trainer.SDEncoderOptions{Device: trainer.Device(p.String("device")),
		Precision: trainer.Precision(p.String("compute")), Log: r.Log})
	if err != nil {
		return fmt.Errorf("latents: %w", err)
	}
	defer sde.Close()
	if sde.Device != trainer.DeviceCUDA && p.String("compute") != string(trainer.PrecisionFP32) {
		r.Report(fmt.Sprintf("encoded on the CPU in fp32 (compute %s applies on the GPU)", p.String("compute")))
	}
	enc := &latentEncoder{ds: ds, enc: sde, tok: tok, batch: p.Int("batch"), spec: spec, prog: prog}
	built := 0
	for si, g := range groups {
		file := shards.ShardName(si)
		fp := latentFingerprint(modelFP, spec, g)
		var info shards.ShardInfo
		cached, err := r.Item(ctx, file, fp, func(tmp string) error {
			var err error
			info, err = enc.encodeShard(ctx, tmp, g)
			return err
		})
		if err != nil {
			return fmt.Errorf("latents: %s: %w", file, err)
		}
		if cached {
			if info, err = shardInfoOf(filepath.Join(r.OutDir, file), g); err != nil {
				return fmt.Errorf("latents: %w", err)
			}
			for _, v := range g {
				prog.Add(v.Frames)
			}
		} else {
			built++
			if onLatentShard != nil {
				onLatentShard(file)
			}
		}
		info.File = file // built under a temporary name
		ix.Shards = append(ix.Shards, shards.LatentShardInfo{ShardInfo: info, Fingerprint: fp})
		for _, v := range g {
			e := v.LatentVideoEntry
			e.Shard = si
			ix.Videos = append(ix.Videos, e)
			if e.Split == shards.SplitVal {
				ix.Split.Val = append(ix.Split.Val, e.ID)
			} else {
				ix.Split.Train = append(ix.Split.Train, e.ID)
			}
		}
	}
	if err := shards.WriteLatentIndex(r, ix); err != nil {
		return fmt.Errorf("latents: %w", err)
	}
	frameCount := 0
	for _, v := range ix.Videos {
		frameCount += v.Frames
	}
	el := time.Since(start)
	r.Log.Info("latents done", "videos", len(ix.Videos), "frames", frameCount, "shards", len(ix.Shards),
		"encoded_shards", built, "elapsed", el.Round(time.Millisecond))
	r.Report(fmt.Sprintf("%d videos, %d frames in %d shards (%d encoded, %d cached), latents %v %s; encoded on %s in %s",
		len(ix.Videos), frameCount, len(ix.Shards), built, len(ix.Shards)-built, latentShape, dtype, sde.Device, sde.Precision))
	r.Report(skipped...)
	return nil
}

// planLatentVideo checks a packed video's frame size and hashes its frames.
func planLatentVideo(ds *shards.Dataset, v shards.VideoInfo, f int) (latentVideo, error) {
	lv := latentVideo{LatentVideoEntry: shards.LatentVideoEntry{ID: v.ID, Frames: v.Frames, Split: v.Split}}
	h := sha256.New()
	for i := 1; i <= v.Frames; i++ {
		b, err := ds.FrameJPEG(v.ID, i)
		if err != nil {
			return lv, err
		}
		if i == 1 {
			c, err := jpeg.DecodeConfig(bytes.NewReader(b))
			if err != nil {
				return lv, fmt.Errorf("frame 1: %w", err)
			}
			if c.Width != c.Height {
				return lv, fmt.Errorf("frames are %dx%d, not square", c.Width, c.Height)
			}
			if c.Width%f != 0 {
				return lv, fmt.Errorf("frames are %dx%d, not a multiple of %d (the VAE's downscale)", c.Width, c.Height, f)
			}
			lv.size = c.Width
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	lv.content = hex.EncodeToString(h.Sum(nil))
	return lv, nil
}

// captionFiles lists, with captions set, the caption file of every video in
// a needed frames stage's index (present or not), so adding or editing one
// makes the stage stale; its shard alone is re-encoded (the per-shard cache).
func captionFiles(p pipeline.Params, needs map[string]string) []string {
	if !p.Bool("captions") {
		return nil
	}
	var files []string
	for _, dir := range needs {
		fv, err := frames.ReadIndex(dir)
		if err != nil {
			continue // not a frames stage, or not run yet
		}
		for _, v := range fv {
			files = append(files, captionPath(v.Source))
		}
	}
	sort.Strings(files)
	return files
}

func captionPath(source string) string {
	return strings.TrimSuffix(source, filepath.Ext(source)) + ".txt"
}

// readCaption reads <source without extension>.txt; ok is false when
// there is none or it is unusable (a warning names the file).
func readCaption(r *pipeline.StageRun, source string) (text, path string, ok bool) {
	path = captionPath(source)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", path, false
	case err != nil:
		r.Log.Warn("caption unreadable; using the prompt", "file", path, "error", err.Error())
		return "", path, false
	case !utf8.Valid(b):
		r.Log.Warn("caption is not UTF-8; using the prompt", "file", path)
		r.Report(fmt.Sprintf("caption %s is not UTF-8: the prompt was used", path))
		return "", path, false
	}
	return strings.TrimSpace(string(b)), path, true
}

// groupLatentVideos cuts the videos (in ID order) into shards of at most
// max frames; a longer video gets a shard of its own.
func groupLatentVideos(videos []latentVideo, max int) [][]latentVideo {
	var groups [][]latentVideo
	var cur []latentVideo
	n := 0
	for _, v := range videos {
		if len(cur) > 0 && n+v.Frames > max {
			groups = append(groups, cur)
			cur, n = nil, 0
		}
		cur = append(cur, v)
		n += v.Frames
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// latentFingerprint is everything a latent shard's bytes depend on.
func latentFingerprint(modelFP string, spec shards.LatentShardSpec, g []latentVideo) string {
	h := sha256.New()
	fmt.Fprintf(h, "model %s\nspec %s %v %v %s\n", modelFP, spec.Dtype, spec.LatentShape, spec.TextShape, spec.Metadata[shards.MetaLatentModel])
	for _, v := range g {
		fmt.Fprintf(h, "video %q %d %s %q\n", v.ID, v.Frames, v.content, v.Caption)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// filesFingerprint hashes the paths, sizes and modification times of files.
func filesFingerprint(paths []string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d %d\n", p, st.Size(), st.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// shardInfoOf recomputes the index entry of a cached shard.
func shardInfoOf(path string, g []latentVideo) (shards.ShardInfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return shards.ShardInfo{}, err
	}
	sum := sha256.Sum256(b)
	info := shards.ShardInfo{File: filepath.Base(path), Bytes: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
	for _, v := range g {
		info.Rows += v.Frames
		info.Videos = append(info.Videos, v.ID)
	}
	return info, nil
}

// latentEncoder encodes shards of videos.
type latentEncoder struct {
	ds    *shards.Dataset
	enc   *trainer.SDEncoder
	tok   *tokenizer.Tokenizer
	batch int
	spec  shards.LatentShardSpec
	prog  *pipeline.Progress
}

// encodeShard writes the latent shard of g at path.
func (e *latentEncoder) encodeShard(ctx context.Context, path string, g []latentVideo) (shards.ShardInfo, error) {
	w, err := shards.CreateLatentShard(shards.DirOutput(filepath.Dir(path)), filepath.Base(path), e.spec)
	if err != nil {
		return shards.ShardInfo{}, err
	}
	defer w.Abort()
	var ids [][]int
	for _, v := range g {
		t, _ := e.tok.Encode(v.Caption)
		ids = append(ids, t)
	}
	text, err := e.enc.EncodeText(ids)
	if err != nil {
		return shards.ShardInfo{}, err
	}
	tn := len(text) / len(g)
	for vi, v := range g {
		lv, err := e.encodeVideo(ctx, v)
		if err != nil {
			return shards.ShardInfo{}, fmt.Errorf("video %s: %w", v.ID, err)
		}
		lv.Caption, lv.Text = v.Caption, text[vi*tn:(vi+1)*tn]
		if err := w.Add(lv); err != nil {
			return shards.ShardInfo{}, err
		}
	}
	return w.Close()
}

func (e *latentEncoder) encodeVideo(ctx context.Context, v latentVideo) (shards.LatentVideo, error) {
	lv := shards.LatentVideo{ID: v.ID}
	s := v.size
	plane := 3 * s * s
	n := prod(e.spec.LatentShape)
	for first := 1; first <= v.Frames; first += e.batch {
		if err := ctx.Err(); err != nil {
			return lv, err
		}
		k := min(e.batch, v.Frames-first+1)
		imgs := make([]float32, k*plane)
		for i := 0; i < k; i++ {
			img, err := e.ds.Frame(v.ID, first+i)
			if err != nil {
				return lv, err
			}
			if b := img.Bounds(); b.Dx() != s || b.Dy() != s {
				return lv, fmt.Errorf("frame %d is %dx%d, frame 1 %dx%d", first+i, b.Dx(), b.Dy(), s, s)
			}
			shards.ToTensor(imgs[i*plane:(i+1)*plane], img, s)
		}
		mean, logvar, err := e.enc.EncodeImages(imgs, k)
		if err != nil {
			return lv, err
		}
		for i := 0; i < k; i++ {
			lv.Mean = append(lv.Mean, mean[i*n:(i+1)*n])
			lv.LogVar = append(lv.LogVar, logvar[i*n:(i+1)*n])
		}
		e.prog.Add(k)
	}
	return lv, nil
}

func prod(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

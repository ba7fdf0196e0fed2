package stages

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/internal/blobstore"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer"
)

// packThenPretrainYAML makes a pack of several small shards and pretrains
// on it, as the machine that made the shards would.
const packThenPretrainYAML = `stages:
  synth:
    kind: synth
    params: {count: 3, width: 64, height: 48, fps: 6, seconds: 7, seed: 5}
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
    params: {val_fraction: 0.34, shard_mb: 0.005}
  pretrain:
    kind: pretrain
    needs: [pack]
    params: {resolution: 16, batch: 2, steps: 2, cond_gap: 2, val_batches: 1}
`

// pretrainFrom is the GPU box's config: pretrain alone, on shards at loc.
func pretrainFrom(loc string) string {
	return "stages:\n  pretrain:\n    kind: pretrain\n    params: {shards: \"" + loc +
		"\", resolution: 16, batch: 2, steps: 2, cond_gap: 2, val_batches: 1}\n"
}

// A pack published to a bucket trains as the local pack does: its shards
// are fetched into the shard cache once (a second run and another workdir
// sharing the cache fetch none), a killed fetch resumes from its partial
// file, a partial file of other bytes is fetched afresh, and a corrupt
// object fails the stage with its name and leaves nothing in the cache.
func TestTrainFromBucketThroughShardCache(t *testing.T) {
	ctx := context.Background()
	s3 := startS3(t)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	t.Setenv(ShardCacheEnv, cacheDir)
	local := pipelinetest.Run(t, All(), packThenPretrainYAML)
	packDir := local.Dir("pack")
	ix, err := shards.ReadIndex(packDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Shards) < 3 {
		t.Fatalf("%d shards; the test wants at least 3", len(ix.Shards))
	}
	publish := func(folder string) {
		t.Helper()
		st, err := blobstore.Open(ctx, s3.loc(folder))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		rels, err := publishOrder(packDir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Publish(ctx, packDir, rels); err != nil {
			t.Fatal(err)
		}
	}
	publish("pack")
	s3.takeGets("")
	wantBackbone := pipelinetest.ReadFile(t, filepath.Join(local.Dir("pretrain"), trainer.BackboneFile))
	sameBackbone := func(p *pipelinetest.Pipeline) {
		t.Helper()
		if got := pipelinetest.ReadFile(t, filepath.Join(p.Dir("pretrain"), trainer.BackboneFile)); !bytes.Equal(got, wantBackbone) {
			t.Error("the backbone trained on the fetched shards differs from the one trained on the local pack")
		}
	}
	shardGets := func() map[string][]string {
		out := map[string][]string{}
		for _, g := range s3.takeGets(".arrow") {
			key, rng, _ := strings.Cut(g, " ")
			out[filepath.Base(key)] = append(out[filepath.Base(key)], rng)
		}
		return out
	}

	// First run: every shard fetched once, whole.
	a := pipelinetest.Run(t, All(), pretrainFrom(s3.loc("pack")))
	sameBackbone(a)
	gets := shardGets()
	for _, s := range ix.Shards {
		if g := gets[s.File]; len(g) != 1 || g[0] != "" {
			t.Errorf("%s: reads %q, want one whole read", s.File, g)
		}
		if _, err := os.Stat(filepath.Join(cacheDir, "sha256", s.SHA256)); err != nil {
			t.Errorf("%s is not in the cache: %v", s.File, err)
		}
	}

	// Again, forced, and in another workdir sharing the cache: nothing fetched.
	if ran := pipelinetest.Ran(a.Run(pipeline.Options{})); len(ran) != 0 {
		t.Errorf("an unchanged bucket re-ran %v", ran)
	}
	a.Run(pipeline.Options{Stages: []string{"pretrain"}, Force: true})
	b := pipelinetest.Run(t, All(), pretrainFrom(s3.loc("pack")))
	sameBackbone(b)
	if gets := shardGets(); len(gets) != 0 {
		t.Errorf("second runs fetched %v", gets)
	}

	// A new cache holding a killed fetch's first half of shard 0 and a
	// partial of wrong bytes for shard 1: shard 0 resumes at its half,
	// shard 1 is fetched again whole.
	cache2 := filepath.Join(t.TempDir(), "cache2")
	t.Setenv(ShardCacheEnv, cache2)
	s0, s1 := ix.Shards[0], ix.Shards[1]
	half := pipelinetest.ReadFile(t, filepath.Join(packDir, s0.File))[:s0.Bytes/2]
	writeFile(t, filepath.Join(cache2, "sha256", s0.SHA256+".partial"), half)
	writeFile(t, filepath.Join(cache2, "sha256", s1.SHA256+".partial"), bytes.Repeat([]byte{7}, int(s1.Bytes/2)))
	c := pipelinetest.Run(t, All(), pretrainFrom(s3.loc("pack")))
	sameBackbone(c)
	gets = shardGets()
	if g, want := gets[s0.File], []string{"bytes=" + itoa(s0.Bytes/2) + "-"}; strings.Join(g, ",") != strings.Join(want, ",") {
		t.Errorf("%s (half fetched): reads %q, want %q", s0.File, g, want)
	}
	if g, want := gets[s1.File], []string{"bytes=" + itoa(s1.Bytes/2) + "-", ""}; strings.Join(g, ",") != strings.Join(want, ",") {
		t.Errorf("%s (wrong partial): reads %q, want %q", s1.File, g, want)
	}
	for _, s := range []shards.ShardInfo{s0, s1} {
		if _, err := os.Stat(filepath.Join(cache2, "sha256", s.SHA256+".partial")); !os.IsNotExist(err) {
			t.Errorf("%s's partial file is still there (%v)", s.File, err)
		}
	}

	// A corrupt object (one byte changed): the stage fails naming it, and
	// neither it nor a partial of it is cached; once repaired, the bucket's
	// listing has changed and the stage runs.
	publish("bad")
	good := pipelinetest.ReadFile(t, filepath.Join(packDir, s1.File))
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 1
	s3.put(t, "bad/"+s1.File, bad)
	cache3 := filepath.Join(t.TempDir(), "cache3")
	t.Setenv(ShardCacheEnv, cache3)
	d := pipelinetest.New(t, All(), pretrainFrom(s3.loc("bad")))
	_, err = d.TryRun(ctx, pipeline.Options{})
	if err == nil || !strings.Contains(err.Error(), "bad/"+s1.File) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("a corrupt shard object: %v", err)
	}
	for _, name := range []string{s1.SHA256, s1.SHA256 + ".partial"} {
		if _, err := os.Stat(filepath.Join(cache3, "sha256", name)); !os.IsNotExist(err) {
			t.Errorf("%s of the corrupt object is in the cache (%v)", name, err)
		}
	}
	s3.put(t, "bad/"+s1.File, good)
	if ran := pipelinetest.Ran(d.Run(pipeline.Options{})); len(ran) != 1 {
		t.Errorf("after the repair ran %v", ran)
	}
	sameBackbone(d)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The latents stage encodes a pack published to a bucket (shards: URL)
// into the same latent shards and index as from the local pack.
func TestLatentsFromBucket(t *testing.T) {
	ctx := context.Background()
	s3 := startS3(t)
	t.Setenv(ShardCacheEnv, filepath.Join(t.TempDir(), "cache"))
	sd := tinySD(t, "vae", "text_encoder", "tokenizer")
	local := pipelinetest.Run(t, latentKinds, latentsYAML(sd, "", 32))
	st, err := blobstore.Open(ctx, s3.loc("pack"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rels, err := publishOrder(local.Dir("pack"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Publish(ctx, local.Dir("pack"), rels); err != nil {
		t.Fatal(err)
	}
	remote := pipelinetest.Run(t, latentKinds, "stages:\n  latents:\n    kind: latents\n    params: {shards: \""+s3.loc("pack")+
		"\", model: "+sd+", shard_frames: 20, prompt: \"a timelapse of clouds\"}\n")
	pipelinetest.SameTrees(t, local.Workdir, remote.Workdir, "latents")
	if n := len(s3.takeGets(".arrow")); n == 0 {
		t.Error("no shard was fetched")
	}
}

// The shards param may name a local folder (read in place, its listing in
// the key); with a needed pack stage as well it is an error.
func TestShardsParamLocalFolder(t *testing.T) {
	local := pipelinetest.Run(t, All(), packThenPretrainYAML)
	p := pipelinetest.Run(t, All(), pretrainFrom(local.Dir("pack")))
	want := pipelinetest.ReadFile(t, filepath.Join(local.Dir("pretrain"), trainer.BackboneFile))
	if got := pipelinetest.ReadFile(t, filepath.Join(p.Dir("pretrain"), trainer.BackboneFile)); !bytes.Equal(got, want) {
		t.Error("the backbone trained on the pack named by the shards param differs from the one trained on the needed pack")
	}
	both := strings.Replace(packThenPretrainYAML, "params: {resolution: 16,", "params: {shards: \""+local.Dir("pack")+"\", resolution: 16,", 1)
	_, err := pipelinetest.New(t, All(), both).TryRun(context.Background(), pipeline.Options{})
	if err == nil || !strings.Contains(err.Error(), "keep one") {
		t.Errorf("a needed pack and the shards param: %v", err)
	}
}

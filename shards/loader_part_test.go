package shards

import (
	"fmt"
	"slices"
	"testing"
)

// TestLoaderPartsSplitTheGlobalBatch: each part of a batch is its slice of
// the whole loader's batch, its pixels too; over an epoch no window is in
// two parts, and the parts together read every window once.
func TestLoaderPartsSplitTheGlobalBatch(t *testing.T) {
	src := makeFramesDir(t, 16, fiveVideos[:5]...)
	ds := open(t, pack1(t, src))
	const T, B, parts = 4, 6, 3
	n := ds.NumWindows(SplitTrain, T, 1)
	steps := n / B // whole batches of the first epoch
	opt := LoaderOptions{FramesLength: T, Resolution: 4, Batch: B, Seed: 5, Epochs: 1}
	whole := collect(t, ds, opt)
	seen := map[string]int{}
	for p := range parts {
		o := opt
		o.Part, o.Parts = p, parts
		got := collect(t, ds, o)
		for s := 0; s < steps; s++ {
			w, g := whole[s], got[s]
			lo, hi := p*B/parts, (p+1)*B/parts
			if g.B != hi-lo || g.Step != s || !slices.Equal(g.Videos, w.Videos[lo:hi]) || !slices.Equal(g.Starts, w.Starts[lo:hi]) {
				t.Fatalf("part %d step %d: clips %v@%v, want %v@%v", p, s, g.Videos, g.Starts, w.Videos[lo:hi], w.Starts[lo:hi])
			}
			clip := len(w.Data) / w.B
			if !slices.Equal(g.Data, w.Data[lo*clip:hi*clip]) {
				t.Fatalf("part %d step %d: pixels differ from the slice of the whole batch", p, s)
			}
			for i := range g.B {
				seen[fmt.Sprintf("%s@%d", g.Videos[i], g.Starts[i])]++
			}
		}
	}
	if len(seen) != steps*B {
		t.Fatalf("%d distinct windows in %d steps of %d", len(seen), steps, B)
	}
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("window %s read %d times in an epoch", k, c)
		}
	}
	if _, err := NewLoader(ds, LoaderOptions{FramesLength: T, Resolution: 4, Batch: 4, Part: 0, Parts: 3}); err == nil {
		t.Fatal("a batch of 4 in 3 parts was accepted")
	}
}

// TestLatentLoaderPartsSplitTheGlobalBatch: each part of a latent batch is
// its slice of the whole loader's batch, the sampled latents (drawn from
// the step's generator) and the text embeddings too, at a resumed start
// step as well; over an epoch no window is in two parts.
func TestLatentLoaderPartsSplitTheGlobalBatch(t *testing.T) {
	d := openTestLatents(t)
	const T, B, parts, start = 3, 4, 2, 1
	n := len(mustWindows(t, d, T))
	steps := n/B - start
	opt := LatentLoaderOptions{FramesLength: T, Batch: B, Seed: 9, StartStep: start, Epochs: 1}
	newLoader := func(o LatentLoaderOptions) *LatentLoader {
		l, err := NewLatentLoader(d, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		return l
	}
	whole := drain(t, newLoader(opt), steps)
	seen := map[string]int{}
	for p := range parts {
		o := opt
		o.Part, o.Parts = p, parts
		got := drain(t, newLoader(o), steps)
		lo, hi := p*B/parts, (p+1)*B/parts
		for s := range steps {
			w, g := whole[s], got[s]
			if g.B != hi-lo || g.Step != w.Step || !slices.Equal(g.Videos, w.Videos[lo:hi]) || !slices.Equal(g.Starts, w.Starts[lo:hi]) {
				t.Fatalf("part %d step %d: clips %v@%v, want %v@%v", p, s, g.Videos, g.Starts, w.Videos[lo:hi], w.Starts[lo:hi])
			}
			clip, txt := len(w.Latents)/w.B, len(w.Text)/w.B
			if !slices.Equal(g.Latents, w.Latents[lo*clip:hi*clip]) || !slices.Equal(g.Text, w.Text[lo*txt:hi*txt]) {
				t.Fatalf("part %d step %d: latents or text differ from the slice of the whole batch", p, s)
			}
			for i := range g.B {
				seen[fmt.Sprintf("%s@%d", g.Videos[i], g.Starts[i])]++
			}
		}
	}
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("window %s read %d times in an epoch", k, c)
		}
	}
	if len(seen) != steps*B {
		t.Fatalf("%d distinct windows in %d steps of %d", len(seen), steps, B)
	}
	if _, err := NewLatentLoader(d, LatentLoaderOptions{FramesLength: T, Batch: 3, Parts: 2}); err == nil {
		t.Fatal("a batch of 3 in 2 parts was accepted")
	}
}

func mustWindows(t *testing.T, d *LatentDataset, T int) []Window {
	t.Helper()
	w, err := d.Windows(SplitTrain, T, 1)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

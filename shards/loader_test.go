package shards

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
)

// collect reads every batch of a finite loader.
func collect(t *testing.T, ds *Dataset, opt LoaderOptions) []*Batch {
	t.Helper()
	l, err := NewLoader(ds, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out []*Batch
	for {
		b, err := l.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func TestWindowsNeverCrossVideos(t *testing.T) {
	src := makeFramesDir(t, 16, fiveVideos[:5]...)
	ds := open(t, pack1(t, src))
	// frames: alpha 7, bravo 3, charlie 12, delta 5, echo 9
	for _, tc := range []struct{ t, stride, want int }{
		{1, 1, 36}, {3, 1, 5 + 1 + 10 + 3 + 7}, {4, 2, 1 + 0 + 6 + 0 + 3}, {13, 1, 0},
	} {
		ws, err := ds.Windows("", tc.t, tc.stride)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != tc.want || ds.NumWindows("", tc.t, tc.stride) != tc.want {
			t.Errorf("T=%d stride=%d: %d windows (NumWindows %d), want %d", tc.t, tc.stride, len(ws), ds.NumWindows("", tc.t, tc.stride), tc.want)
		}
		for _, w := range ws {
			v := ds.videos[w.Video]
			if w.Start < 1 || w.Start+(tc.t-1)*tc.stride > v.Frames {
				t.Errorf("window %+v crosses the end of %s (%d frames)", w, w.Video, v.Frames)
			}
		}
	}
}

// pack1 packs src with no validation split.
func pack1(t *testing.T, src string) string {
	dir, _ := pack(t, PackOptions{FramesDir: src, ShardBytes: 8 << 10})
	return dir
}

func TestLoaderClipsHoldTheRightFrames(t *testing.T) {
	src := makeFramesDir(t, 24, fiveVideos[:5]...)
	ds := open(t, pack1(t, src))
	const T, R, stride = 3, 12, 2
	bs := collect(t, ds, LoaderOptions{FramesLength: T, Stride: stride, Resolution: R, Batch: 4, Workers: 2, Epochs: 1, Seed: 1})
	frame := 3 * R * R
	want := make([]float32, frame)
	clips := 0
	for _, b := range bs {
		if b.T != T || b.C != 3 || b.H != R || b.W != R || len(b.Data) != b.B*T*frame {
			t.Fatalf("batch shape %d %d %d %d %d, data %d", b.B, b.T, b.C, b.H, b.W, len(b.Data))
		}
		for i := 0; i < b.B; i++ {
			clips++
			for k := 0; k < T; k++ {
				img, err := ds.Frame(b.Videos[i], b.Starts[i]+k*stride)
				if err != nil {
					t.Fatalf("clip %s@%d frame %d: %v", b.Videos[i], b.Starts[i], k, err)
				}
				ToTensor(want, img, R)
				q := make([]uint8, len(want))
				quantize(q, want)
				dequantize(want, q)
				got := b.Data[(i*T+k)*frame : (i*T+k+1)*frame]
				if !slices.Equal(got, want) {
					t.Fatalf("clip %s@%d: frame %d is not frame %d of the video", b.Videos[i], b.Starts[i], k, b.Starts[i]+k*stride)
				}
			}
		}
	}
	if clips != ds.NumWindows(SplitTrain, T, stride) || clips == 0 {
		t.Errorf("one epoch gave %d clips, want %d", clips, ds.NumWindows(SplitTrain, T, stride))
	}
	for _, v := range bs[0].Data {
		if v < -1 || v > 1 {
			t.Fatalf("value %v outside [-1, 1]", v)
		}
	}
}

func TestLoaderDeterministicAcrossWorkers(t *testing.T) {
	src := makeFramesDir(t, 16, fiveVideos[:5]...)
	ds := open(t, pack1(t, src))
	for _, sampling := range []string{SamplingEpoch, SamplingRandom} {
		opt := LoaderOptions{FramesLength: 2, Resolution: 8, Batch: 5, Seed: 42, Sampling: sampling, Epochs: 2}
		opt.Workers = 1
		a := collect(t, ds, opt)
		opt.Workers = 3
		b := collect(t, ds, opt)
		if len(a) != len(b) {
			t.Fatalf("%s: %d vs %d batches", sampling, len(a), len(b))
		}
		for i := range a {
			if !slices.Equal(a[i].Videos, b[i].Videos) || !slices.Equal(a[i].Starts, b[i].Starts) || !slices.Equal(a[i].Data, b[i].Data) || a[i].Step != i {
				t.Fatalf("%s: batch %d differs between 1 and 3 workers", sampling, i)
			}
		}
		// Resuming at step 3 gives the same stream from batch 3 on.
		opt.StartStep = 3
		r := collect(t, ds, opt)
		if len(r) != len(a)-3 || r[0].Step != 3 {
			t.Fatalf("%s: resumed stream has %d batches from step %d, want %d from 3", sampling, len(r), r[0].Step, len(a)-3)
		}
		for i := range r {
			if !slices.Equal(r[i].Videos, a[i+3].Videos) || !slices.Equal(r[i].Starts, a[i+3].Starts) || r[i].Epoch != a[i+3].Epoch {
				t.Fatalf("%s: resumed batch %d differs", sampling, i+3)
			}
		}
		opt.StartStep = 0
		opt.Seed = 43
		c := collect(t, ds, opt)
		if fmt.Sprint(c[0].Videos, c[0].Starts) == fmt.Sprint(a[0].Videos, a[0].Starts) {
			t.Errorf("%s: seed does not change the order", sampling)
		}
	}
}

func TestLoaderEpochVisitsEveryWindowOnce(t *testing.T) {
	src := makeFramesDir(t, 16, fiveVideos[:5]...)
	ds := open(t, pack1(t, src))
	const T = 4
	n := ds.NumWindows(SplitTrain, T, 1) // 4+0+9+2+6 = 21
	bs := collect(t, ds, LoaderOptions{FramesLength: T, Resolution: 4, Batch: 4, Seed: 9, Epochs: 3})
	var stream []string
	for _, b := range bs {
		for i := range b.B {
			stream = append(stream, fmt.Sprintf("%s@%d", b.Videos[i], b.Starts[i]))
		}
	}
	if len(stream) != 3*n {
		t.Fatalf("3 epochs gave %d clips, want %d", len(stream), 3*n)
	}
	all, _ := ds.Windows(SplitTrain, T, 1)
	for e := 0; e < 3; e++ {
		seen := map[string]int{}
		for _, s := range stream[e*n : (e+1)*n] {
			seen[s]++
		}
		for _, w := range all {
			if k := fmt.Sprintf("%s@%d", w.Video, w.Start); seen[k] != 1 {
				t.Errorf("epoch %d: window %s seen %d times", e, k, seen[k])
			}
		}
	}
	if slices.Equal(stream[:n], stream[n:2*n]) {
		t.Error("two epochs in the same order")
	}
	// Batch.Epoch is the epoch of the batch's first clip.
	for _, b := range bs {
		if want := b.Step * 4 / n; b.Epoch != want {
			t.Errorf("step %d: epoch %d, want %d", b.Step, b.Epoch, want)
		}
	}
	if last := bs[len(bs)-1]; last.B != (3*n)%4 && (3*n)%4 != 0 {
		t.Errorf("last batch has %d clips", last.B)
	}
}

func TestLoaderErrors(t *testing.T) {
	src := makeFramesDir(t, 16, testVideo{id: "a", frames: 3}, testVideo{id: "b", frames: 2})
	ds := open(t, pack1(t, src))
	for _, opt := range []LoaderOptions{
		{FramesLength: 4, Resolution: 8},             // longer than every video
		{FramesLength: 2, Resolution: 0},             // no resolution
		{FramesLength: 2, Resolution: 8, Split: "x"}, // unknown split
		{FramesLength: 2, Resolution: 8, Sampling: "y"},
		{FramesLength: 2, Resolution: 8, Split: SplitVal}, // no val videos
	} {
		if l, err := NewLoader(ds, opt); err == nil {
			l.Close()
			t.Errorf("%+v accepted", opt)
		}
	}
	// Endless by default, and Close stops it.
	l, err := NewLoader(ds, LoaderOptions{FramesLength: 2, Resolution: 4, Batch: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := l.Next(context.Background()); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if err := ds.Close(); !errors.Is(err, ErrLoadersOpen) {
		t.Errorf("dataset Close under an open loader: %v", err)
	}
	l.Close()
	if _, err := l.Next(context.Background()); err == nil {
		t.Error("Next after Close gave no error")
	}
	l.Close()
	if err := ds.Close(); err != nil {
		t.Errorf("dataset Close after the loader's: %v", err)
	}
}

// The frame cache changes speed, never values: no cache, a cache too small
// for the set, and the default give the same batches.
func TestLoaderCacheChangesNoValue(t *testing.T) {
	src := makeFramesDir(t, 16, fiveVideos[:5]...)
	ds := open(t, pack1(t, src))
	var runs [][]*Batch
	for _, cache := range []int64{-1, 3 * 8 * 8 * 10, 0} {
		runs = append(runs, collect(t, ds, LoaderOptions{FramesLength: 3, Resolution: 8, Batch: 3, Workers: 2, Seed: 5, Epochs: 2, CacheBytes: cache}))
	}
	// Recycled buffers: every value is rewritten.
	l, err := NewLoader(ds, LoaderOptions{FramesLength: 3, Resolution: 8, Batch: 3, Workers: 2, Seed: 5, Epochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range runs[0] {
		b, err := l.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(b.Data, runs[0][i].Data) {
			t.Fatalf("recycling: batch %d differs", i)
		}
		for j := range b.Data {
			b.Data[j] = 42 // poison before handing it back
		}
		l.Recycle(b)
	}
	l.Close()
	for r := 1; r < len(runs); r++ {
		if len(runs[r]) != len(runs[0]) {
			t.Fatalf("run %d: %d batches, want %d", r, len(runs[r]), len(runs[0]))
		}
		for i := range runs[0] {
			if !slices.Equal(runs[r][i].Data, runs[0][i].Data) {
				t.Fatalf("run %d batch %d: values differ from the uncached run", r, i)
			}
		}
	}
}

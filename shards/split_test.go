package shards

import (
	"fmt"
	"testing"
)

func TestAssignSplitStable(t *testing.T) {
	var ids []string
	for i := 0; i < 400; i++ {
		ids = append(ids, fmt.Sprintf("video-%03d", i))
	}
	base := AssignSplit(ids, 0.2, 7)
	nval := 0
	for _, id := range ids {
		if base[id] == SplitVal {
			nval++
		}
	}
	if nval < 50 || nval > 110 {
		t.Errorf("%d of 400 in val at fraction 0.2", nval)
	}
	// Adding videos, removing some, reordering: the others keep their split.
	more := append([]string{"new-1", "new-2"}, ids[100:]...)
	for i := 0; i < 60; i++ {
		more = append(more, fmt.Sprintf("extra-%d", i))
	}
	after := AssignSplit(more, 0.2, 7)
	for _, id := range ids[100:] {
		if after[id] != base[id] {
			t.Errorf("%s moved from %s to %s when the set changed", id, base[id], after[id])
		}
	}
	// Another seed gives another split.
	other := AssignSplit(ids, 0.2, 8)
	diff := 0
	for _, id := range ids {
		if other[id] != base[id] {
			diff++
		}
	}
	if diff == 0 {
		t.Error("seed does not change the split")
	}
	// No validation asked: none.
	for id, s := range AssignSplit(ids, 0, 7) {
		if s != SplitTrain {
			t.Errorf("%s in %s at fraction 0", id, s)
		}
	}
}

func TestAssignSplitSmallSetGetsOneVal(t *testing.T) {
	for seed := int64(0); seed < 20; seed++ {
		got := AssignSplit([]string{"a", "b", "c"}, 0.01, seed)
		nval := 0
		for _, s := range got {
			if s == SplitVal {
				nval++
			}
		}
		if nval != 1 {
			t.Errorf("seed %d: %d val videos of 3, want 1: %v", seed, nval, got)
		}
	}
	if got := AssignSplit([]string{"only"}, 0.5, 0); got["only"] != SplitTrain && splitScore(0, "only") >= 0.5 {
		t.Errorf("single video: %v", got)
	}
}

func TestPackSplitMatchesIndex(t *testing.T) {
	src := makeFramesDir(t, 16, fiveVideos...)
	dir, _ := pack(t, PackOptions{FramesDir: src, ValFraction: 0.4, Seed: 3})
	ds := open(t, dir)
	want := AssignSplit([]string{"alpha", "bravo", "charlie", "delta", "echo"}, 0.4, 3)
	n := 0
	for _, split := range []string{SplitTrain, SplitVal} {
		for _, v := range ds.Videos(split) {
			n++
			if want[v.ID] != split {
				t.Errorf("%s in %s, want %s", v.ID, split, want[v.ID])
			}
		}
	}
	if n != 5 || len(ds.Index.Split.Train)+len(ds.Index.Split.Val) != 5 || len(ds.Index.Split.Val) == 0 {
		t.Errorf("split %+v", ds.Index.Split)
	}
}

package shards

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"sort"
	"strconv"
)

// splitScore maps a video ID to a number in [0, 1) that depends only on the
// seed and the ID, so a video's split never changes when others are added or
// removed.
func splitScore(seed int64, id string) float64 {
	h := sha256.Sum256([]byte(strconv.FormatInt(seed, 10) + "/" + id))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}

// AssignSplit returns the split of each video ID: a video goes to validation
// when its score (a hash of seed and ID) is below valFraction. When that
// leaves validation empty although valFraction > 0 and there are at least two
// videos, the video with the lowest score goes to validation, so a small
// dataset still has something to validate on.
func AssignSplit(ids []string, valFraction float64, seed int64) map[string]string {
	out := make(map[string]string, len(ids))
	lowest, lowestID := math.Inf(1), ""
	nval := 0
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	for _, id := range sorted {
		s := splitScore(seed, id)
		if s < valFraction {
			out[id] = SplitVal
			nval++
		} else {
			out[id] = SplitTrain
		}
		if s < lowest {
			lowest, lowestID = s, id
		}
	}
	if nval == 0 && valFraction > 0 && len(sorted) >= 2 {
		out[lowestID] = SplitVal
	}
	return out
}

//go:build gpu

package gpu

import (
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// checkSavedPacked: a half-precision step with every saved value packed
// (SDOptions.SavedPackMin 1) planned some in bfloat16 and, in bf16, none in
// float16 (sd_saved.go), and no persistent one.
func checkSavedPacked(t *testing.T, s *SDNet) {
	t.Helper()
	if s.sv == nil {
		t.Fatal("no saved value was planned for 16 bits")
	}
	count := map[cuda.DataType]int{}
	for v, typ := range s.sv.typ {
		if typ != cuda.TypeF32 {
			count[typ]++
			if s.p.persistent[v] {
				t.Errorf("persistent value %d packed", v)
			}
		}
	}
	t.Logf("saved values packed: %d bfloat16, %d float16", count[cuda.TypeBF16], count[cuda.TypeF16])
	if count[cuda.TypeBF16] == 0 || (s.prec == BF16 && count[cuda.TypeF16] > 0) {
		t.Errorf("packed types %v in %s", count, s.prec)
	}
}

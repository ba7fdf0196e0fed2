package trainer

import (
	"context"
	"math"
	"path/filepath"
	"testing"
)

func TestTrainDeterministic(t *testing.T) {
	oneCore(t)
	var outs []string
	for range 2 {
		o := trainOpts(t, 4)
		if _, err := Train(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, filepath.Join(o.OutDir, TemporalFile))
	}
	a, b := readTensors(t, outs[0]), readTensors(t, outs[1])
	for name, ta := range a.Tensors {
		for i := range ta.Data {
			if math.Float32bits(ta.Data[i]) != math.Float32bits(b.Tensors[name].Data[i]) {
				t.Fatalf("%s[%d]: %v vs %v", name, i, ta.Data[i], b.Tensors[name].Data[i])
			}
		}
	}
}

package trainer

import (
	"context"
	"path/filepath"
	"testing"
)

func tinyCommon(t testing.TB, shardsDir string, steps int) Common {
	return Common{
		Shards: shardsDir, OutDir: t.TempDir(), Resolution: 16, Batch: 2, Steps: steps,
		LR: 2e-3, WarmupSteps: 2, GradClip: 1, Seed: 7, CheckpointEvery: 5, ValidateEvery: 0,
		ValBatches: 1, Workers: 1, Log: testLog(t),
	}
}

func TestPretrainSpeed(t *testing.T) {
	dir := makeShards(t, 4, 10, 16)
	c := tinyCommon(t, dir, 3)
	res, err := Pretrain(context.Background(), PretrainOptions{Common: c, CondGap: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if _, _, err := LoadBackbone(filepath.Join(c.OutDir, BackboneFile), 1); err != nil {
		t.Fatal(err)
	}
}

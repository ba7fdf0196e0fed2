package beamrun

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/timelapse-ml/pipeline/internal/videotest"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
	"github.com/timelapse-ml/pipeline/stages"
)

func TestMain(m *testing.M) {
	flag.Parse()
	beam.Init()
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath)) // the binary buildBinary made
	}
	os.Exit(code)
}

var kinds = []pipeline.Kind{stages.IngestKind(), stages.FramesKind(), stages.PackKind()}

func report(res []pipeline.Result, stage string) string {
	for _, r := range res {
		if r.Stage == stage {
			return strings.Join(r.Reports, "\n")
		}
	}
	return ""
}

// runAdopting runs the engine over the stages a Beam job covered and
// checks it redid no video's work.
func runAdopting(t *testing.T, p *pipelinetest.Pipeline, res *Result) {
	t.Helper()
	if !slices.Equal(res.Stages, []string{"ingest", "frames", "pack"}) {
		t.Errorf("job covered %v", res.Stages)
	}
	staged, _ := filepath.Glob(filepath.Join(stages.StagingDir(p.Workdir, "pack"), "shard-*.arrow"))
	if len(staged) == 0 {
		t.Error("the job staged no shard")
	}
	out := p.Run(pipeline.Options{Stages: res.Stages})
	for _, f := range staged {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("the engine wrote %s again instead of adopting it", filepath.Base(f))
		}
	}
	if rep := report(out, "ingest"); !strings.Contains(rep, "5 videos: 3 ok, 2 quarantined") {
		t.Errorf("ingest report:\n%s", rep)
	}
	if rep := report(out, "frames"); !strings.Contains(rep, "0 extracted, 3 cached") {
		t.Errorf("the engine extracted frames the job had made:\n%s", rep)
	}
	if err := stages.RemoveStaging(p.Workdir); err != nil {
		t.Fatal(err)
	}
}

// Beam on in-process prism, then the engine adopting its work: the same
// manifest, frames, index and shards as the local engine, byte for byte.
func TestPrismEqualsLocal(t *testing.T) {
	src := videotest.Folder(t, 21)
	local := pipelinetest.Run(t, kinds, videotest.Config(src))
	p := pipelinetest.New(t, kinds, videotest.Config(src))
	res, err := Run(context.Background(), p.Config, Options{Runner: "prism"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Videos != 5 {
		t.Errorf("job saw %d videos, want 5", res.Videos)
	}
	runAdopting(t, p, res)
	pipelinetest.SameTrees(t, local.Workdir, p.Workdir, "ingest", "frames", "pack")
}

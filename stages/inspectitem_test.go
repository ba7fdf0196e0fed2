package stages

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/ingest"
)

// inspectItem (the ingest stage's and VideoWork's probe cache) probes a
// real video once, reads the kept probe back on the next call, and names
// the kept probe when it cannot be read.
func TestInspectItemProbesOnceThenReadsBack(t *testing.T) {
	ctx := context.Background()
	video := filepath.Join(t.TempDir(), "a.mp4")
	renderTiny(t, video, 1)
	fi, err := os.Stat(video)
	if err != nil {
		t.Fatal(err)
	}
	var opts ingest.Options
	st := newStaging(t.TempDir(), "ingest", IngestKind())
	rel, fp := probeItem(video, fi, opts, "tools")
	first, hit, err := inspectItem(ctx, st.build, st.dir, rel, fp, video, opts, "staged probe")
	if err != nil || hit {
		t.Fatalf("first probe: hit %v, %v", hit, err)
	}
	if first.Path == "" {
		t.Fatalf("first probe is empty: %+v", first)
	}
	again, hit, err := inspectItem(ctx, st.build, st.dir, rel, fp, video, opts, "staged probe")
	if err != nil || !hit || !reflect.DeepEqual(again, first) {
		t.Fatalf("second probe: hit %v, %v\n%+v\nwant %+v", hit, err, again, first)
	}
	if err := os.WriteFile(filepath.Join(st.dir, rel), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, hit, err = inspectItem(ctx, st.build, st.dir, rel, fp, video, opts, "staged probe")
	if !hit || err == nil || !strings.Contains(err.Error(), "ingest "+video+": staged probe:") {
		t.Fatalf("broken kept probe: hit %v, %v", hit, err)
	}
}

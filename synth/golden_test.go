package synth

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/frames.golden")

// The renderer's bytes are pinned: the same seeds and times must give the
// same frames on every machine and Go version (no fused multiply-adds, no
// platform math). A deliberate change to the look updates the golden file
// (go test ./synth -run Golden -update) and bumps the synth kind's Version.
func TestRendererGolden(t *testing.T) {
	var b strings.Builder
	for _, sz := range [][2]int{{96, 64}, {64, 96}} {
		for seed := int64(0); seed < 3; seed++ {
			sp := Spec{Width: sz[0], Height: sz[1], Seed: seed}.WithDefaults()
			sc := newScene(sp)
			buf := make([]byte, sz[0]*sz[1]*3)
			for _, fp := range []frameParams{{0, 0}, {3.3, 0.41}, {11.7, 1}} {
				sc.renderFrame(buf, fp, 2)
				sum := sha256.Sum256(buf)
				fmt.Fprintf(&b, "%dx%d seed=%d t=%g p=%g %s\n", sz[0], sz[1], seed, fp.t, fp.progress, hex.EncodeToString(sum[:12]))
			}
		}
	}
	const path = "testdata/frames.golden"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("rendered frames changed:\ngot:\n%swant:\n%s", got, want)
	}
}

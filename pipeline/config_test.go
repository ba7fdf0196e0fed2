package pipeline_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/pipeline"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestInvalidConfigsGolden checks every problem of each broken config is
// reported at once, with file:line:col, against testdata/invalid/*.golden.
func TestInvalidConfigsGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d broken configs", len(files))
	}
	reg := pipeline.NewRegistry(testKinds(&runLog{}, nil))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(f)
			_, err = pipeline.Load(name, "/cfg", src, reg)
			if err == nil {
				t.Fatal("loaded without error")
			}
			ce, ok := err.(*pipeline.ConfigError)
			if !ok {
				t.Fatalf("error is %T, want *ConfigError: %v", err, err)
			}
			for _, p := range ce.Problems {
				if p.Line == 0 && !strings.HasPrefix(name, "12-") {
					t.Errorf("problem without a position: %s", p)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, _ := os.ReadFile(golden)
			if got != string(want) {
				t.Errorf("messages differ from %s:\n got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestParamsResolved(t *testing.T) {
	reg := pipeline.NewRegistry(testKinds(&runLog{}, nil))
	cfg, err := pipeline.Load("t.yaml", "/cfg", []byte(`
workdir: out
stages:
  a:
    kind: write
    params: {wait: 2s, ratio: 3, tags: one, source: videos}
  b:
    kind: write
    params: {wait: 1.5}
`), reg)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Stage("a").Params
	if a.Duration("wait").Seconds() != 2 || a.Float("ratio") != 3 || a.Strings("tags")[0] != "one" ||
		a.String("source") != "/cfg/videos" || a.Int("count") != 1 || a.String("text") != "hello" {
		t.Fatalf("params: %v", a)
	}
	if cfg.Stage("b").Params.Duration("wait").Seconds() != 1.5 || cfg.Stage("b").Params.Has("source") {
		t.Fatalf("b params: %v", cfg.Stage("b").Params)
	}
	if cfg.Workdir != "/cfg/out" {
		t.Fatalf("workdir %s", cfg.Workdir)
	}
}

// FuzzLoad feeds the config loader arbitrary bytes: it must return a config
// or an error, never panic.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Add([]byte(chain))
	reg := pipeline.NewRegistry(testKinds(&runLog{}, nil))
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := pipeline.Load("fuzz.yaml", "/cfg", src, reg)
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
		if err == nil {
			cfg.Order()
		}
	})
}

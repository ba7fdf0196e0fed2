package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRefusesOutputFoldersOverUserFiles runs each way a config could point
// a stage's output folder at the user's files through validate and run:
// both exit 2 with a message naming the stage, the folder and the param,
// and every file is left byte for byte as it was.
func TestRefusesOutputFoldersOverUserFiles(t *testing.T) {
	user := map[string]string{
		"videos/a.mp4":                  "not really a video, but the user's only copy",
		"videos/notes.txt":              "shot list",
		"frames/mine.jpg":               "a frame the user extracted",
		"data/videos/b.mp4":             "another video",
		"pretrain/backbone.safetensors": "the user's backbone",
		"models/backbone.safetensors":   "another backbone",
		"still.png":                     "a still",
		"project/pipeline-project.txt":  "the project's notes",
	}
	cases := []struct {
		name, yaml string
		want       []string // in the message
	}{
		{"ingest stage named videos over folder videos (the issue's reproduction)",
			"workdir: .\nstages:\n  videos:\n    kind: ingest\n    params: {folder: videos}\n",
			[]string{`stage "videos"`, "videos is the same path as param folder of stage \"videos\"", "workdir"}},
		{"workdir . with a pre-existing stage-named folder",
			"workdir: .\nstages:\n  ingest:\n    kind: ingest\n    params: {folder: videos}\n  frames:\n    kind: frames\n    needs: [ingest]\n",
			[]string{`stage "frames"`, "frames already exists", "mine.jpg", "rename the stage"}},
		{"a stage output inside the videos folder",
			"workdir: videos/work\nstages:\n  ingest:\n    kind: ingest\n    params: {folder: videos}\n",
			[]string{`stage "ingest"`, "lies inside param folder of stage \"ingest\"", filepath.Join("videos", "work", "ingest")}},
		{"the videos folder inside a stage output",
			"workdir: .\nstages:\n  data:\n    kind: ingest\n    params: {folder: data/videos}\n",
			[]string{`stage "data"`, "contains param folder of stage \"data\""}},
		{"a backbone file inside a stage folder",
			"workdir: .\nstages:\n  ingest:\n    kind: ingest\n    params: {folder: videos}\n  models:\n    kind: synth\n  train:\n    kind: train\n    needs: [ingest]\n    params: {backbone: models/backbone.safetensors}\n",
			[]string{`stage "models"`, "contains param backbone of stage \"train\""}},
		{"a still image inside a stage folder, reached through a symlinked workdir",
			"workdir: .link\nstages:\n  models:\n    kind: synth\n  sample:\n    kind: sample\n    needs: [models]\n    params: {image: models/backbone.safetensors}\n",
			[]string{`stage "models"`, "param image of stage \"sample\""}},
		{"a stage output that is the config's folder",
			"workdir: ..\nstages:\n  project:\n    kind: synth\n",
			[]string{`stage "project"`, "the config file's folder"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, user)
			if err := os.Symlink(".", filepath.Join(dir, ".link")); err != nil {
				t.Fatal(err)
			}
			cfgDir := dir
			if strings.Contains(c.yaml, "workdir: ..") {
				cfgDir = filepath.Join(dir, "project")
			}
			cfg := filepath.Join(cfgDir, "pipeline.yaml")
			if err := os.WriteFile(cfg, []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			before := pipelinetest.TreeDigests(t, dir)
			for _, cmd := range []string{"validate", "run"} {
				code, _, stderr := runCLI(t, cmd, cfg)
				if code != exitUsage {
					t.Errorf("%s: exit %d, want 2; stderr:\n%s", cmd, code, stderr)
				}
				for _, w := range c.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("%s: stderr lacks %q:\n%s", cmd, w, stderr)
					}
				}
			}
			after := pipelinetest.TreeDigests(t, dir)
			if len(after) != len(before) {
				t.Errorf("files before %d, after %d", len(before), len(after))
			}
			for rel, h := range before {
				if after[rel] != h {
					t.Errorf("%s changed or vanished", rel)
				}
			}
		})
	}
}

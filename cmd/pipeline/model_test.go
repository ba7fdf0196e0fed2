package main

import (
	"archive/zip"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// The fixtures live with the weights package (both are h-weights').
const weightsTestdata = "../../trainer/weights/testdata"

func openWeights(t *testing.T, path string) *weights.Model {
	t.Helper()
	m, err := weights.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// equalTensors asserts name-by-name, value-by-value equality (as float32
// bits) and that got keeps the dtype wantDtype.
func equalTensors(t *testing.T, what string, got, want weights.Source, wantDtype weights.Dtype) {
	t.Helper()
	gn, wn := got.Names(), want.Names()
	if strings.Join(gn, "\n") != strings.Join(wn, "\n") {
		t.Fatalf("%s: %d tensors, the fixture has %d (or other names)", what, len(gn), len(wn))
	}
	for _, n := range gn {
		gi, _ := got.Info(n)
		wi, _ := want.Info(n)
		if gi.Dtype != wantDtype {
			t.Fatalf("%s: %s written as %s, the source had %s", what, n, gi.Dtype, wantDtype)
		}
		if len(gi.Shape) != len(wi.Shape) || gi.Numel() != wi.Numel() {
			t.Fatalf("%s: %s shape %v, fixture %v", what, n, gi.Shape, wi.Shape)
		}
		a, b := make([]float32, gi.Numel()), make([]float32, wi.Numel())
		if err := got.Read(n, a); err != nil {
			t.Fatal(err)
		}
		if err := want.Read(n, b); err != nil {
			t.Fatal(err)
		}
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("%s: %s[%d] = %v, fixture %v", what, n, i, a[i], b[i])
			}
		}
	}
}

func TestModelConvertEqualsDiffusersFolders(t *testing.T) {
	fixture := openWeights(t, filepath.Join(weightsTestdata, "sd-tiny"))
	dir := t.TempDir()
	for _, tc := range []struct {
		in    string
		comps []weights.Component
		dtype weights.Dtype
	}{
		{"sd-tiny-ldm.safetensors", weights.Components, weights.F16},
		{"pickles/sd-tiny-ldm.ckpt", weights.Components, weights.F16},
		{"pickles/diffusion_pytorch_model.bin", []weights.Component{weights.UNet}, weights.F32},
	} {
		out := filepath.Join(dir, filepath.Base(tc.in)+".out")
		code, stdout, stderr := runCLI(t, "model", "convert", filepath.Join(weightsTestdata, tc.in), out)
		if code != 0 {
			t.Fatalf("convert %s: exit %d\n%s%s", tc.in, code, stdout, stderr)
		}
		conv := openWeights(t, out)
		if len(conv.Components) != len(tc.comps) || conv.Layout != "diffusers" {
			t.Fatalf("%s: layout %s with %d components", tc.in, conv.Layout, len(conv.Components))
		}
		for _, c := range tc.comps {
			equalTensors(t, tc.in+" "+string(c), conv.Components[c], fixture.Components[c], tc.dtype)
			if _, err := os.Stat(filepath.Join(out, string(c), "config.json")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// a pseudo-3D folder converts to itself: names and F16 values kept
	out := filepath.Join(dir, "p3d")
	if code, _, stderr := runCLI(t, "model", "convert", filepath.Join(weightsTestdata, "sd-tiny-pseudo3d"), out); code != 0 {
		t.Fatalf("convert pseudo3d: %s", stderr)
	}
	p := openWeights(t, out)
	if !p.Pseudo3D || !p.Inpainting {
		t.Fatal("converted pseudo-3D folder lost its flags")
	}
	equalTensors(t, "pseudo3d", p.Components[weights.UNet], openWeights(t, filepath.Join(weightsTestdata, "sd-tiny-pseudo3d")).Components[weights.UNet], weights.F16)
}

func TestModelConvertNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755) // an empty folder the user made
	os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o644)
	before := pipelinetest.TreeDigests(t, dir)
	code, _, stderr := runCLI(t, "model", "convert", filepath.Join(weightsTestdata, "sd-tiny-ldm.safetensors"), out)
	if code != exitUsage || !strings.Contains(stderr, out) || !strings.Contains(stderr, "exists") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	after := pipelinetest.TreeDigests(t, dir)
	if len(after) != len(before) {
		t.Fatalf("files changed: %v -> %v", before, after)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestModelInfo(t *testing.T) {
	code, stdout, stderr := runCLI(t, "model", "info", filepath.Join(weightsTestdata, "sd-tiny-ldm.safetensors"), "--config", filepath.Join(weightsTestdata, "sd-tiny"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"layout:        single-file", "inpainting:    no", "pseudo-3D:     no",
		"unet:          UNet2DConditionModel, 684 tensors, 618,468 parameters (F16 618,468)", "attention_head_dim 2", "norm_num_groups 4",
		"vae:           AutoencoderKL", "text_encoder:  CLIPTextModel"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("info lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = runCLI(t, "model", "info", "--json", filepath.Join(weightsTestdata, "sd-tiny-inpaint"))
	var js modelInfo
	if err := json.Unmarshal([]byte(stdout), &js); code != 0 || err != nil {
		t.Fatalf("info --json: exit %d, %v", code, err)
	}
	if u := js.Components["unet"]; !js.Inpainting || js.Layout != "diffusers" || u.ByDtype["F16"] != u.Parameters || u.Parameters == 0 {
		t.Fatalf("info --json: %+v", js)
	}
	code, stdout, _ = runCLI(t, "model", "info", filepath.Join(weightsTestdata, "sd-tiny-pseudo3d"))
	if code != 0 || !strings.Contains(stdout, "inpainting:    yes") || !strings.Contains(stdout, "pseudo-3D:     yes") || !strings.Contains(stdout, "vae:           absent") {
		t.Fatalf("pseudo3d info: exit %d\n%s", code, stdout)
	}
}

// A pickle that would create a file if a general unpickler loaded it: info
// refuses it, naming the global and the file, and the file never appears.
func TestModelInfoRefusesHostilePickle(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	cmd := "touch " + marker
	pkl := []byte("\x80\x02cos\nsystem\n(X")
	pkl = binary.LittleEndian.AppendUint32(pkl, uint32(len(cmd)))
	pkl = append(append(pkl, cmd...), "tR."...)
	path := filepath.Join(dir, "model.ckpt")
	f, _ := os.Create(path)
	zw := zip.NewWriter(f)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Store})
	w.Write(pkl)
	zw.Close()
	f.Close()
	for _, sub := range []string{"info", "convert"} {
		args := []string{"model", sub, path}
		if sub == "convert" {
			args = append(args, filepath.Join(dir, "out"))
		}
		code, _, stderr := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(stderr, "os.system") || !strings.Contains(stderr, path) {
			t.Fatalf("%s: exit %d, stderr %q", sub, code, stderr)
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Fatal("the pickle's command ran")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Fatal("convert of a refused file created its output")
	}
}

func TestModelBadFilesExitTwo(t *testing.T) {
	dir := t.TempDir()
	good, _ := os.ReadFile(filepath.Join(weightsTestdata, "sd-tiny-ldm.safetensors"))
	trunc := filepath.Join(dir, "trunc.safetensors")
	os.WriteFile(trunc, good[:len(good)/2], 0o644)
	ckpt, _ := os.ReadFile(filepath.Join(weightsTestdata, "pickles", "sd-tiny-ldm.ckpt"))
	truncCkpt := filepath.Join(dir, "trunc.ckpt")
	os.WriteFile(truncCkpt, ckpt[:len(ckpt)-5000], 0o644)
	for _, p := range []string{trunc, truncCkpt, filepath.Join(dir, "missing.ckpt"), dir} {
		code, _, stderr := runCLI(t, "model", "info", p)
		if code != exitUsage || !strings.Contains(stderr, p) {
			t.Errorf("info %s: exit %d, stderr %q", p, code, stderr)
		}
	}
	if code, _, _ := runCLI(t, "model", "info"); code != exitUsage {
		t.Errorf("info without PATH: exit %d", code)
	}
	if code, _, _ := runCLI(t, "model", "nope"); code != exitUsage {
		t.Errorf("unknown subcommand: exit %d", code)
	}
}

package weights

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ldmTensors loads the tiny single file for editing.
func ldmTensors(t *testing.T) *memSource {
	return fileTensors(t, "testdata/sd-tiny-ldm.safetensors")
}

func wantOpenError(t *testing.T, path string, parts ...string) {
	t.Helper()
	m, err := Open(path)
	if err == nil {
		m.Close()
		t.Fatalf("Open(%s) succeeded", path)
	}
	msg := err.Error()
	for _, p := range append([]string{path}, parts...) {
		if !strings.Contains(msg, p) {
			t.Errorf("error %q does not mention %q", msg, p)
		}
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("testdata/sd-tiny-ldm.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("truncated", func(t *testing.T) {
		wantOpenError(t, write("trunc.safetensors", good[:len(good)-100]), "outside the", "truncated")
	})
	t.Run("header length lies", func(t *testing.T) {
		b := append([]byte(nil), good...)
		binary.LittleEndian.PutUint64(b, 1<<62)
		wantOpenError(t, write("hlen.safetensors", b), "header length")
	})
	t.Run("offsets lie", func(t *testing.T) {
		h := []byte(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,9999999999999]}}`)
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		b = append(append(b, h...), make([]byte, 16)...)
		wantOpenError(t, write("off.safetensors", b), "tensor a", "outside")
	})
	t.Run("shape lies", func(t *testing.T) {
		h := []byte(`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}`)
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		b = append(append(b, h...), make([]byte, 16)...)
		wantOpenError(t, write("shape.safetensors", b), "too large")
	})
	t.Run("not a weight file", func(t *testing.T) {
		wantOpenError(t, write("x.safetensors", []byte("hello, this is text")), "header")
	})
	t.Run("missing tensors", func(t *testing.T) {
		m := ldmTensors(t)
		delete(m.infos, "model.diffusion_model.input_blocks.4.1.proj_in.weight")
		p := filepath.Join(dir, "missing.safetensors")
		writeMem(t, p, m)
		wantOpenError(t, p, "unet", "missing tensor", "down_blocks.1.attentions.0.proj_in.weight")
	})
	t.Run("unexpected shape", func(t *testing.T) {
		m := ldmTensors(t)
		n := "model.diffusion_model.output_blocks.3.1.transformer_blocks.0.ff.net.2.weight"
		m.set(n, F16, []int{32, 64, 1}, m.data[n])
		p := filepath.Join(dir, "shape2.safetensors")
		writeMem(t, p, m)
		wantOpenError(t, p, "unexpected shape", "up_blocks.1.attentions.0.transformer_blocks.0.ff.net.2.weight is [32 64 1]")
	})
	t.Run("sd2", func(t *testing.T) {
		m := ldmTensors(t)
		m.set("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", F16, []int{16, 1024}, make([]byte, 2*16*1024))
		p := filepath.Join(dir, "sd2.safetensors")
		writeMem(t, p, m)
		wantOpenError(t, p, "SD-2.x")
	})
	t.Run("sdxl", func(t *testing.T) {
		m := ldmTensors(t)
		m.set("conditioner.embedders.0.transformer.text_model.final_layer_norm.weight", F16, []int{16}, make([]byte, 32))
		p := filepath.Join(dir, "sdxl.safetensors")
		writeMem(t, p, m)
		wantOpenError(t, p, "SDXL")
	})
	t.Run("missing in diffusers folder", func(t *testing.T) {
		d := filepath.Join(dir, "model", "unet")
		os.MkdirAll(d, 0o755)
		cfg, _ := os.ReadFile("testdata/sd-tiny/unet/config.json")
		os.WriteFile(filepath.Join(d, "config.json"), cfg, 0o644)
		m := fileTensors(t, "testdata/sd-tiny/unet/diffusion_pytorch_model.safetensors")
		delete(m.infos, "conv_out.bias")
		writeMem(t, filepath.Join(d, "diffusion_pytorch_model.safetensors"), m)
		wantOpenError(t, filepath.Join(dir, "model"), "missing tensor", "conv_out.bias")
	})
}

// A single file whose UNet takes 9 channels is an inpainting model; BF16
// and F32 tensors read as float32 exactly; F16 stays bit-exact through a write.
func TestDtypesAndInpaintingSingleFile(t *testing.T) {
	m := ldmTensors(t)
	n := "model.diffusion_model.input_blocks.0.0.weight"
	vals := make([]float32, 16*9*3*3)
	bf := make([]byte, 2*len(vals))
	for i := range vals {
		vals[i] = math.Float32frombits(uint32(i*977+1) << 16) // exact in bfloat16
		binary.LittleEndian.PutUint16(bf[2*i:], uint16(math.Float32bits(vals[i])>>16))
	}
	m.set(n, BF16, []int{16, 9, 3, 3}, bf)
	f32 := "model.diffusion_model.out.2.bias"
	m.set(f32, F32, []int{4}, binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil,
		math.Float32bits(1.5)), math.Float32bits(-2)), math.Float32bits(3e-8)), math.Float32bits(7)))
	p := filepath.Join(t.TempDir(), "inpaint.safetensors")
	writeMem(t, p, m)
	mod := mustOpen(t, p)
	if !mod.Inpainting {
		t.Fatal("a 9-channel UNet is not flagged as inpainting")
	}
	got := readAll(t, mod.Components[UNet], "conv_in.weight")
	for i := range vals {
		if got[i] != vals[i] && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(vals[i]))) {
			t.Fatalf("bf16 value %d: %v, want %v", i, got[i], vals[i])
		}
	}
	if b := readAll(t, mod.Components[UNet], "conv_out.bias"); b[0] != 1.5 || b[1] != -2 || b[2] != 3e-8 || b[3] != 7 {
		t.Fatalf("f32 values: %v", b)
	}
	counts := mod.ParamCounts(UNet)
	if counts[BF16] != int64(len(vals)) || counts[F32] != 4 || counts[F16] == 0 {
		t.Fatalf("counts by dtype: %v", counts)
	}
}

package weights

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

type rawOut struct {
	name, dtype string
	shape       []int
	data        []byte
}

// writeRaw writes a safetensors file by hand, any dtype allowed.
func writeRaw(t *testing.T, path string, ts []rawOut) {
	t.Helper()
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	h := map[string]any{}
	var off int64
	var body []byte
	for _, r := range ts {
		h[r.name] = stHeaderEntry{Dtype: r.dtype, Shape: r.shape, DataOffsets: [2]int64{off, off + int64(len(r.data))}}
		off += int64(len(r.data))
		body = append(body, r.data...)
	}
	hj, _ := json.Marshal(h)
	b := append(binary.LittleEndian.AppendUint64(nil, uint64(len(hj))), hj...)
	if err := os.WriteFile(path, append(b, body...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// renamed returns m's tensors as rawOuts with names passed through f.
func renamed(m *memSource, f func(string) string) []rawOut {
	var out []rawOut
	for n, ti := range m.infos {
		out = append(out, rawOut{f(n), string(ti.Dtype), ti.Shape, m.data[n]})
	}
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(to), 0o755)
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The file names and older key styles people's folders have.
func TestFolderVariants(t *testing.T) {
	dir := t.TempDir()
	fixture := mustOpen(t, "testdata/sd-tiny")
	t.Run("fp16 variant and .bin", func(t *testing.T) {
		copyFile(t, "testdata/sd-tiny/unet/config.json", filepath.Join(dir, "a/unet/config.json"))
		copyFile(t, "testdata/sd-tiny/unet/diffusion_pytorch_model.safetensors", filepath.Join(dir, "a/unet/diffusion_pytorch_model.fp16.safetensors"))
		copyFile(t, "testdata/sd-tiny/unet/config.json", filepath.Join(dir, "b/unet/config.json"))
		copyFile(t, "testdata/pickles/diffusion_pytorch_model.bin", filepath.Join(dir, "b/unet/diffusion_pytorch_model.bin"))
		for _, d := range []string{"a", "b"} {
			m := mustOpen(t, filepath.Join(dir, d))
			sameValues(t, d, m.Components[UNet], fixture.Components[UNet])
		}
	})
	t.Run("transformers 4 text encoder and old diffusers VAE", func(t *testing.T) {
		te := renamed(fileTensors(t, "testdata/sd-tiny/text_encoder/model.safetensors"), func(n string) string { return "text_model." + n })
		te = append(te, rawOut{"text_model.embeddings.position_ids", "I64", []int{1, 77}, make([]byte, 8*77)})
		copyFile(t, "testdata/sd-tiny/text_encoder/config.json", filepath.Join(dir, "c/text_encoder/config.json"))
		writeRaw(t, filepath.Join(dir, "c/text_encoder/model.safetensors"), te)
		old := map[string]string{"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
		vae := renamed(fileTensors(t, "testdata/sd-tiny/vae/diffusion_pytorch_model.safetensors"), func(n string) string {
			for k, v := range old {
				n = strings.Replace(n, ".attentions.0."+k+".", ".attentions.0."+v+".", 1)
			}
			return n
		})
		copyFile(t, "testdata/sd-tiny/vae/config.json", filepath.Join(dir, "c/vae/config.json"))
		writeRaw(t, filepath.Join(dir, "c/vae/diffusion_pytorch_model.safetensors"), vae)
		m := mustOpen(t, filepath.Join(dir, "c"))
		sameValues(t, "text encoder", m.Components[TextEncoder], fixture.Components[TextEncoder])
		sameValues(t, "vae", m.Components[VAE], fixture.Components[VAE])
		if !strings.Contains(strings.Join(m.Notes, "\n"), "position_ids (I64)") {
			t.Errorf("notes do not mention the dropped position_ids: %v", m.Notes)
		}
	})
	t.Run("single file with transformers 4 prefix and schedule buffers", func(t *testing.T) {
		ldm := renamed(ldmTensors(t), func(n string) string {
			return strings.Replace(n, "cond_stage_model.transformer.", "cond_stage_model.transformer.text_model.", 1)
		})
		ldm = append(ldm, rawOut{"cond_stage_model.transformer.text_model.embeddings.position_ids", "I64", []int{1, 77}, make([]byte, 8*77)},
			rawOut{"alphas_cumprod", "F32", []int{2}, make([]byte, 8)}, rawOut{"model_ema.decay", "F32", []int{}, make([]byte, 4)})
		p := filepath.Join(dir, "v1.safetensors")
		writeRaw(t, p, ldm)
		m := mustOpen(t, p)
		for _, c := range Components {
			sameValues(t, string(c), m.Components[c], fixture.Components[c])
		}
		if notes := strings.Join(m.Notes, "\n"); !strings.Contains(notes, "alphas_cumprod") || !strings.Contains(notes, "model_ema.decay") {
			t.Errorf("notes do not list the ignored tensors: %v", m.Notes)
		}
	})
}

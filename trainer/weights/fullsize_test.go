package weights

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFullSizeLoad is the full-size load benchmark, run by
// bench/weights_load.sh (skipped otherwise): WEIGHTS_BENCH_GEN=PATH,F16|F32
// writes an SD-1.5 single file at the real shapes (UNet, VAE, CLIP text
// encoder in original names) with random values; WEIGHTS_BENCH_LOAD=PATH,f32|f16
// opens it and reads every tensor into float32 (or, for F16 files, float16)
// destination buffers, then prints the load time and peak resident memory.
func TestFullSizeLoad(t *testing.T) {
	if spec := os.Getenv("WEIGHTS_BENCH_GEN"); spec != "" {
		path, dt, _ := strings.Cut(spec, ",")
		src := sd15SingleFile(Dtype(dt))
		start := time.Now()
		if err := WriteSafetensors(path, src, nil); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(path)
		fmt.Printf("generated %s: %d tensors, %.2f GB, %.1fs\n", path, len(src.infos), float64(st.Size())/1e9, time.Since(start).Seconds())
		return
	}
	spec := os.Getenv("WEIGHTS_BENCH_LOAD")
	if spec == "" {
		t.Skip("set WEIGHTS_BENCH_GEN or WEIGHTS_BENCH_LOAD (bench/weights_load.sh)")
	}
	path, dst, _ := strings.Cut(spec, ",")
	base := vmHWM(t)
	start := time.Now()
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	openTime := time.Since(start)
	var loaded int64
	var keep [][]byte
	var keepF [][]float32
	for _, c := range Components {
		s := m.Components[c]
		for _, n := range s.Names() {
			ti, _ := s.Info(n)
			if dst == "f16" && ti.Dtype == F16 {
				b := make([]byte, ti.Bytes())
				if err := s.ReadRaw(n, b); err != nil {
					t.Fatal(err)
				}
				keep = append(keep, b)
				loaded += int64(len(b))
				continue
			}
			f := make([]float32, ti.Numel())
			if err := s.Read(n, f); err != nil {
				t.Fatal(err)
			}
			keepF = append(keepF, f)
			loaded += 4 * int64(len(f))
		}
	}
	total := time.Since(start)
	peak := vmHWM(t)
	st, _ := os.Stat(path)
	fmt.Printf("| %s | %.2f GB | %s | %.2f GB | %.2fs (open %.0f ms) | %.2f GB | %.3f | %.0f MB |\n",
		path[strings.LastIndex(path, "/")+1:], float64(st.Size())/1e9, dst, float64(loaded)/1e9, total.Seconds(),
		float64(openTime.Milliseconds()), float64(peak)/1e9, float64(peak)/float64(loaded), float64(base)/1e6)
	runtime.KeepAlive(keep)
	runtime.KeepAlive(keepF)
}

// vmHWM returns the process's peak resident set size in bytes.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// genSource is a Source of random tensors, generated when read.
type genSource struct{ infos map[string]TensorInfo }

func (g *genSource) Names() []string {
	var out []string
	for n := range g.infos {
		out = append(out, n)
	}
	return out
}
func (g *genSource) Info(n string) (TensorInfo, bool) { ti, ok := g.infos[n]; return ti, ok }
func (g *genSource) Read(string, []float32) error     { return fmt.Errorf("not used") }
func (g *genSource) Close() error                     { return nil }

// ReadRaw fills dst with random values of magnitude in [0.25, 0.5).
func (g *genSource) ReadRaw(n string, dst []byte) error {
	x := uint64(len(n))*0x9e3779b97f4a7c15 | 1
	next := func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
	if g.infos[n].Dtype == F16 {
		for i := 0; i+8 <= len(dst); i += 8 {
			r := next()
			for k := 0; k < 4; k++ {
				binary.LittleEndian.PutUint16(dst[i+2*k:], uint16(r>>(16*k))&0x83ff|0x3400)
			}
		}
		for i := len(dst) &^ 7; i+2 <= len(dst); i += 2 {
			binary.LittleEndian.PutUint16(dst[i:], uint16(next())&0x83ff|0x3400)
		}
		return nil
	}
	for i := 0; i+4 <= len(dst); i += 4 {
		binary.LittleEndian.PutUint32(dst[i:], uint32(next())&0x807fffff|0x3e800000)
	}
	return nil
}

// sd15SingleFile lists an SD-1.5 single file's tensors at the real shapes,
// in the original names (the text encoder with transformers 4's prefix).
func sd15SingleFile(d Dtype) *genSource {
	g := &genSource{infos: map[string]TensorInfo{}}
	add := func(prefix string, ps []param) {
		for _, p := range ps {
			sh := p.shape
			if p.ldmShape != nil {
				sh = p.ldmShape
			}
			g.infos[prefix+p.ldm] = TensorInfo{Name: prefix + p.ldm, Dtype: d, Shape: sh}
		}
	}
	add(ldmUNet, unetParams(sd15UNetConfig(4), false))
	add(ldmVAE, vaeParams(sd15VAEConfig()))
	add(ldmCLIP+"text_model.", clipParams(sd15CLIPConfig()))
	return g
}

// A full-size SD-1.5 single file (sparse: header and size only, no data is
// read) opens with the published parameter counts and SD-1.5's config.
func TestFullSizeSingleFileInfers(t *testing.T) {
	for _, in := range []int{4, 9} {
		g := sd15SingleFile(F16)
		if in == 9 {
			n := ldmUNet + "input_blocks.0.0.weight"
			g.infos[n] = TensorInfo{Name: n, Dtype: F16, Shape: []int{320, 9, 3, 3}}
		}
		pid := ldmCLIP + "text_model.embeddings.position_ids"
		g.infos[pid] = TensorInfo{Name: pid, Dtype: "I64", Shape: []int{1, 77}}
		var infos []TensorInfo
		var size int64
		for _, ti := range g.infos {
			infos = append(infos, ti)
			size += int64(ti.Numel()) * storedSize[string(ti.Dtype)]
		}
		h, err := safetensorsHeader(infos, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "sd15.safetensors")
		if err := os.WriteFile(p, h, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, int64(len(h))+size); err != nil {
			t.Fatal(err)
		}
		m := mustOpen(t, p)
		unetWant := int64(859_520_964)
		if in == 9 {
			unetWant = 859_535_364
		}
		for c, want := range map[Component]int64{UNet: unetWant, VAE: 83_653_863, TextEncoder: 123_060_480} {
			if got := m.ParamCounts(c)[F16]; got != want {
				t.Errorf("in %d: %s has %d parameters, want %d", in, c, got, want)
			}
		}
		if m.Inpainting != (in == 9) {
			t.Errorf("in %d: inpainting %v", in, m.Inpainting)
		}
		for c, fields := range map[Component]map[string]string{
			UNet: {"block_out_channels": "[320 640 1280 1280]", "cross_attention_dim": "768", "norm_num_groups": "32", "attention_head_dim": "8",
				"layers_per_block": "2", "in_channels": fmt.Sprint(in)},
			VAE:         {"block_out_channels": "[128 256 512 512]", "latent_channels": "4", "norm_num_groups": "32"},
			TextEncoder: {"hidden_size": "768", "num_hidden_layers": "12", "num_attention_heads": "12", "intermediate_size": "3072", "vocab_size": "49408"},
		} {
			for k, want := range fields {
				if got := fmt.Sprint(configField(t, m.Configs[c], k)); got != want {
					t.Errorf("in %d: %s %s = %s, want %s", in, c, k, got, want)
				}
			}
		}
	}
}

package weights

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// memSource is an in-memory Source for writing test files.
type memSource struct {
	infos map[string]TensorInfo
	data  map[string][]byte
}

func newMemSource() *memSource {
	return &memSource{infos: map[string]TensorInfo{}, data: map[string][]byte{}}
}

func (m *memSource) set(name string, d Dtype, shape []int, raw []byte) {
	m.infos[name] = TensorInfo{Name: name, Dtype: d, Shape: shape}
	m.data[name] = raw
}

func (m *memSource) Names() []string {
	var out []string
	for n := range m.infos {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
func (m *memSource) Info(n string) (TensorInfo, bool) { t, ok := m.infos[n]; return t, ok }
func (m *memSource) Read(n string, dst []float32) error {
	decodeInto(dst, m.data[n], m.infos[n].Dtype)
	return nil
}
func (m *memSource) ReadRaw(n string, dst []byte) error { copy(dst, m.data[n]); return nil }
func (m *memSource) Close() error                       { return nil }

// copySource loads every tensor of s into a memSource.
func copySource(t *testing.T, s Source) *memSource {
	t.Helper()
	out := newMemSource()
	for _, n := range s.Names() {
		ti, _ := s.Info(n)
		b := make([]byte, ti.Bytes())
		if err := s.ReadRaw(n, b); err != nil {
			t.Fatal(err)
		}
		out.set(n, ti.Dtype, ti.Shape, b)
	}
	return out
}

// fileTensors reads a whole safetensors file into a memSource.
func fileTensors(t *testing.T, path string) *memSource {
	t.Helper()
	sf, raws, err := openSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.release()
	ts := newTensorSet(floatEntries(sf, raws, new([]string)))
	defer ts.Close()
	return copySource(t, ts)
}

func writeMem(t *testing.T, path string, m *memSource) {
	t.Helper()
	if err := WriteSafetensors(path, m, nil); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, s Source, name string) []float32 {
	t.Helper()
	ti, ok := s.Info(name)
	if !ok {
		t.Fatalf("no tensor %s", name)
	}
	dst := make([]float32, ti.Numel())
	if err := s.Read(name, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// sameValues asserts a and b hold the same names, shapes and float32 values.
func sameValues(t *testing.T, what string, a, b Source) {
	t.Helper()
	an, bn := a.Names(), b.Names()
	if strings.Join(an, ",") != strings.Join(bn, ",") {
		t.Fatalf("%s: names differ: %d vs %d tensors; first only in one: %s", what, len(an), len(bn), firstDiff(an, bn))
	}
	for _, n := range an {
		ai, _ := a.Info(n)
		bi, _ := b.Info(n)
		if !sameShape(ai.Shape, bi.Shape) {
			t.Fatalf("%s: %s shape %v vs %v", what, n, ai.Shape, bi.Shape)
		}
		av, bv := readAll(t, a, n), readAll(t, b, n)
		for i := range av {
			if math.Float32bits(av[i]) != math.Float32bits(bv[i]) {
				t.Fatalf("%s: %s[%d] = %v vs %v", what, n, i, av[i], bv[i])
			}
		}
	}
}

func firstDiff(a, b []string) string {
	in := map[string]int{}
	for _, n := range a {
		in[n]++
	}
	for _, n := range b {
		in[n]--
	}
	var d []string
	for n, k := range in {
		if k != 0 {
			d = append(d, n)
		}
	}
	return firstFew(d)
}

// goldenConfigs returns the fixture's configs.json, per component.
func goldenConfigs(t *testing.T) map[Component][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "configs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return map[Component][]byte{UNet: m["unet"], VAE: m["vae"], TextEncoder: m["text_encoder"]}
}

func mustOpen(t *testing.T, path string) *Model {
	t.Helper()
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func configField(t *testing.T, cfg []byte, key string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		t.Fatal(err)
	}
	return m[key]
}

func mathFloat32bits(v float32) uint32 { return math.Float32bits(v) }

package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sample() *File {
	f := New()
	f.Metadata["step"] = "42"
	f.Metadata["backbone_sha256"] = "abc"
	f.Tensors["b.weight"] = Tensor{Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, float32(math.Inf(1)), 0, -0}}
	f.Tensors["a.bias"] = Tensor{Shape: []int{2}, Data: []float32{0.25, 1e-30}}
	f.Tensors["scalar"] = Tensor{Shape: []int{}, Data: []float32{7}}
	return f
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := Write(path, sample()); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	if len(got.Metadata) != 2 || got.Metadata["step"] != "42" || got.Metadata["backbone_sha256"] != "abc" {
		t.Errorf("metadata = %v", got.Metadata)
	}
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("got %d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for name, wt := range want.Tensors {
		gt := got.Tensors[name]
		if len(gt.Shape) != len(wt.Shape) {
			t.Errorf("%s shape %v, want %v", name, gt.Shape, wt.Shape)
		}
		for i := range wt.Data {
			if math.Float32bits(gt.Data[i]) != math.Float32bits(wt.Data[i]) {
				t.Errorf("%s[%d] = %v, want %v", name, i, gt.Data[i], wt.Data[i])
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after an atomic write, want 1", len(entries))
	}
}

// TestLayout checks the byte layout PyTorch's reader expects: 8-byte length,
// JSON header padded to 8 bytes, tensors contiguous in name order.
func TestLayout(t *testing.T) {
	var buf bytes.Buffer
	f := New()
	f.Tensors["w"] = Tensor{Shape: []int{2}, Data: []float32{1, 2}}
	if err := Encode(&buf, f); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	hlen := binary.LittleEndian.Uint64(b)
	if hlen%8 != 0 {
		t.Errorf("header length %d not a multiple of 8", hlen)
	}
	header := strings.TrimRight(string(b[8:8+hlen]), " ")
	if header != `{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}` {
		t.Errorf("header = %s", header)
	}
	data := b[8+hlen:]
	if len(data) != 8 || math.Float32frombits(binary.LittleEndian.Uint32(data[4:])) != 2 {
		t.Errorf("data = %v", data)
	}
}

func TestDecodeHalfPrecision(t *testing.T) {
	// F16 1.0 = 0x3c00, -2.0 = 0xc000; BF16 1.0 = 0x3f80.
	hdr := `{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]}}  `
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(hdr)))
	buf.WriteString(hdr)
	binary.Write(&buf, binary.LittleEndian, []uint16{0x3c00, 0xc000, 0x3f80})
	f, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if h := f.Tensors["h"].Data; h[0] != 1 || h[1] != -2 {
		t.Errorf("F16 = %v", h)
	}
	if b := f.Tensors["b"].Data; b[0] != 1 {
		t.Errorf("BF16 = %v", b)
	}
}

func TestDecodeRejects(t *testing.T) {
	mk := func(hdr string, data int) []byte {
		var buf bytes.Buffer
		binary.Write(&buf, binary.LittleEndian, uint64(len(hdr)))
		buf.WriteString(hdr)
		buf.Write(make([]byte, data))
		return buf.Bytes()
	}
	cases := map[string][]byte{
		"short":         {1, 2, 3},
		"header length": append(binary.LittleEndian.AppendUint64(nil, 1<<40), '{', '}'),
		"bad json":      mk(`{"a":`, 0),
		"dtype":         mk(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, 8),
		"out of range":  mk(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, 8),
		"size mismatch": mk(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8),
		"overlap":       mk(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12),
		"metadata":      mk(`{"__metadata__":{"step":3}}`, 0),
		"negative dim":  mk(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, 0),
	}
	for name, data := range cases {
		if _, err := Decode(data); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
}

func TestEncodeRejectsShapeMismatch(t *testing.T) {
	f := New()
	f.Tensors["a"] = Tensor{Shape: []int{3}, Data: []float32{1}}
	if err := Encode(&bytes.Buffer{}, f); err == nil {
		t.Error("Encode accepted a shape that does not match its data")
	}
}

func TestHashes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a")
	os.WriteFile(p, []byte("abc"), 0o644)
	h, err := FileHash(p)
	if err != nil {
		t.Fatal(err)
	}
	if h != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("FileHash = %s", h)
	}
	type cfg struct{ A, B int }
	h1, _ := ConfigHash(cfg{1, 2})
	h2, _ := ConfigHash(cfg{1, 3})
	if h1 == h2 || len(h1) != 64 {
		t.Errorf("ConfigHash gave %s and %s", h1, h2)
	}
}

package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"testing"
)

// FuzzSafetensorsHeader: no header, however it lies, panics or yields a
// tensor outside the file; allocation is bounded by the input's size.
func FuzzSafetensorsHeader(f *testing.F) {
	good, err := os.ReadFile("testdata/sd-tiny/vae/diffusion_pytorch_model.safetensors")
	if err != nil {
		f.Fatal(err)
	}
	hlen := binary.LittleEndian.Uint64(good)
	f.Add(good[:8+hlen+64])
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	h := []byte(`{"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`)
	f.Add(append(append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), h...), make([]byte, 8)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, _, err := readSafetensorsHeader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for n, r := range ts {
			if r.off < 8 || r.off+r.size > int64(len(data)) {
				t.Fatalf("tensor %s: range [%d,%d) outside %d bytes", n, r.off, r.off+r.size, len(data))
			}
		}
	})
}

// FuzzPickle: the restricted reader never panics, and whatever it accepts
// was built from allowed globals only.
func FuzzPickle(f *testing.F) {
	zr, err := zip.OpenReader("testdata/pickles/sd-tiny-ldm.ckpt")
	if err != nil {
		f.Fatal(err)
	}
	for _, zf := range zr.File {
		if zf.Name == "sd-tiny-ldm/data.pkl" {
			rc, _ := zf.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			f.Add(b[:min(len(b), 4096)])
		}
	}
	zr.Close()
	sd := tensor(pk{}.proto().op('}', '(').str("a"), "FloatStorage", "0", 16, 0, 4, 4)
	f.Add([]byte(tensor(sd.str("b"), "HalfStorage", "1", 4, 0, 4).op('u', '.')))
	for _, h := range hostilePickles("/nonexistent/x") {
		f.Add([]byte(h.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := unpickle(data, storageResolver())
		if err == nil && v == nil {
			t.Fatal("nil value without error")
		}
		// the whole torch reader, the pickle beside two small storages
		zb := fuzzZip(data)
		ts, err := readTorchZipFrom(bytes.NewReader(zb), int64(len(zb)))
		for n, r := range ts {
			if err != nil || r.off < 0 || r.off+r.size > int64(len(zb)) || r.size != int64(numel(r.shape))*storedSize[r.dtype] {
				t.Fatalf("tensor %s: range [%d,%d) of %d bytes, shape %v %s", n, r.off, r.off+r.size, len(zb), r.shape, r.dtype)
			}
		}
	})
}

// The fuzz seed state dict reads through the whole torch reader.
func TestFuzzSeedStateDict(t *testing.T) {
	sd := tensor(pk{}.proto().op('}', '(').str("a"), "FloatStorage", "0", 16, 0, 4, 4)
	data := []byte(tensor(sd.str("b"), "HalfStorage", "1", 4, 0, 4).op('u', '.'))
	zb := fuzzZip(data)
	ts, err := readTorchZipFrom(bytes.NewReader(zb), int64(len(zb)))
	if err != nil || len(ts) != 2 || ts["b"].dtype != "F16" || ts["a"].size != 64 {
		t.Fatalf("%v %v", ts, err)
	}
}

// fuzzZip is a torch zip container holding pickle and two small storages.
func fuzzZip(pickle []byte) []byte {
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for _, e := range []struct {
		name string
		b    []byte
	}{{"archive/data.pkl", pickle}, {"archive/data/0", make([]byte, 64)}, {"archive/data/1", make([]byte, 8)}} {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Store})
		w.Write(e.b)
	}
	zw.Close()
	return zb.Bytes()
}

package weights

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// maxHeader bounds a safetensors JSON header (the format's own limit).
const maxHeader = 100 << 20

// rawTensor is one tensor as a file stores it, before any renaming.
type rawTensor struct {
	name  string
	dtype string // as stored: F32, F16, BF16, I64, ...
	shape []int
	off   int64 // absolute
	size  int64
}

// storedSize gives the element sizes of the dtypes a header may name.
var storedSize = map[string]int64{
	"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
	"U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
}

type stHeaderEntry struct {
	Dtype       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// readSafetensorsHeader parses and checks the header of a safetensors file of
// the given size: every byte range lies inside the file, matches its dtype and
// shape, and no two overlap. Nothing is allocated beyond the header's bytes.
func readSafetensorsHeader(r io.ReaderAt, size int64) (map[string]rawTensor, map[string]string, error) {
	if size < 8 {
		return nil, nil, fmt.Errorf("%d bytes, shorter than the 8-byte header length", size)
	}
	var lb [8]byte
	if _, err := r.ReadAt(lb[:], 0); err != nil {
		return nil, nil, fmt.Errorf("header length: %w", err)
	}
	hlen := binary.LittleEndian.Uint64(lb[:])
	if hlen > maxHeader || hlen > uint64(size-8) {
		return nil, nil, fmt.Errorf("header length %d exceeds the file (%d bytes) or the 100 MB limit: not a safetensors file, or truncated", hlen, size)
	}
	hb := make([]byte, hlen)
	if _, err := r.ReadAt(hb, 8); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	return parseSafetensorsHeader(hb, size-8-int64(hlen), 8+int64(hlen))
}

func parseSafetensorsHeader(hb []byte, dataLen, base int64) (map[string]rawTensor, map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hb, &raw); err != nil {
		return nil, nil, fmt.Errorf("header JSON: %v", err)
	}
	meta := map[string]string{}
	out := make(map[string]rawTensor, len(raw))
	for name, msg := range raw {
		if name == "__metadata__" {
			_ = json.Unmarshal(msg, &meta) // unused here; some tools write non-string values
			continue
		}
		var e stHeaderEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, fmt.Errorf("tensor %s: %v", name, err)
		}
		es, ok := storedSize[e.Dtype]
		if !ok {
			return nil, nil, fmt.Errorf("tensor %s: unknown dtype %q", name, e.Dtype)
		}
		n, err := checkedNumel(e.Shape)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %s: %v", name, err)
		}
		start, end := e.DataOffsets[0], e.DataOffsets[1]
		if start < 0 || end < start || end > dataLen {
			return nil, nil, fmt.Errorf("tensor %s: byte range [%d,%d) outside the %d data bytes (truncated file or lying header)", name, start, end, dataLen)
		}
		if end-start != n*es {
			return nil, nil, fmt.Errorf("tensor %s: shape %v %s needs %d bytes, its range holds %d", name, e.Shape, e.Dtype, n*es, end-start)
		}
		shape := e.Shape
		if shape == nil {
			shape = []int{}
		}
		out[name] = rawTensor{name: name, dtype: e.Dtype, shape: shape, off: base + start, size: end - start}
	}
	spans := make([]rawTensor, 0, len(out))
	for _, t := range out {
		if t.size > 0 {
			spans = append(spans, t)
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].off < spans[j].off })
	for i := 1; i < len(spans); i++ {
		if spans[i].off < spans[i-1].off+spans[i-1].size {
			return nil, nil, fmt.Errorf("tensors %s and %s overlap", spans[i-1].name, spans[i].name)
		}
	}
	return out, meta, nil
}

// openSafetensors reads the header of the safetensors file at path.
func openSafetensors(path string) (*sharedFile, map[string]rawTensor, error) {
	sf, err := openShared(path)
	if err != nil {
		return nil, nil, fmt.Errorf("weights: %w", err)
	}
	ts, _, err := readSafetensorsHeader(sf.f, sf.size)
	if err != nil {
		sf.release()
		return nil, nil, fmt.Errorf("weights %s: %w", path, err)
	}
	return sf, ts, nil
}

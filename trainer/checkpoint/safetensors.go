package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// MetadataKey is the reserved header key holding the string metadata.
const MetadataKey = "__metadata__"

// maxHeader bounds the JSON header a reader accepts (safetensors uses 100 MB).
const maxHeader = 100 << 20

// ErrFormat is wrapped by every error about a malformed file.
var ErrFormat = errors.New("checkpoint: malformed safetensors")

// Tensor is a float32 tensor in row-major order.
type Tensor struct {
	Shape []int
	Data  []float32
}

// File is the content of a safetensors file.
type File struct {
	Metadata map[string]string
	Tensors  map[string]Tensor
}

// New returns an empty File.
func New() *File { return &File{Metadata: map[string]string{}, Tensors: map[string]Tensor{}} }

// Names returns the tensor names in sorted order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

type headerEntry struct {
	Dtype       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

func numel(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt32/d {
			return 0, fmt.Errorf("shape %v too large", shape)
		}
		n *= d
	}
	return n, nil
}

// Encode writes f in safetensors format to w. Tensors are laid out in name
// order; the header is padded with spaces to a multiple of 8 bytes.
func Encode(w io.Writer, f *File) error {
	names := f.Names()
	header := map[string]any{}
	if len(f.Metadata) > 0 {
		header[MetadataKey] = f.Metadata
	}
	var off int64
	for _, n := range names {
		if n == MetadataKey || n == "" {
			return fmt.Errorf("checkpoint: invalid tensor name %q", n)
		}
		t := f.Tensors[n]
		want, err := numel(t.Shape)
		if err != nil {
			return fmt.Errorf("checkpoint: tensor %s: %w", n, err)
		}
		if want != len(t.Data) {
			return fmt.Errorf("checkpoint: tensor %s: shape %v needs %d values, have %d", n, t.Shape, want, len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		end := off + int64(4*len(t.Data))
		header[n] = headerEntry{Dtype: "F32", Shape: shape, DataOffsets: [2]int64{off, end}}
		off = end
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("checkpoint: header: %w", err)
	}
	if pad := len(hj) % 8; pad != 0 {
		hj = append(hj, bytes.Repeat([]byte(" "), 8-pad)...)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hj); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, n := range names {
		for _, v := range f.Tensors[n].Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) >= 1<<16 {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// Write atomically writes f to path (a temporary file beside it, synced and
// renamed into place).
func Write(path string, f *File) error {
	af, err := atomicfile.Create(path)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := Encode(af, f); err != nil {
		af.Abort()
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if err := af.Commit(); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return nil
}

// Decode parses a safetensors file held in data. It accepts F32 tensors and
// converts F16 and BF16 ones to float32; other dtypes are an error.
func Decode(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the 8-byte header length", ErrFormat, len(data))
	}
	hlen := binary.LittleEndian.Uint64(data[:8])
	if hlen > maxHeader || hlen > uint64(len(data)-8) {
		return nil, fmt.Errorf("%w: header length %d exceeds the file (%d bytes)", ErrFormat, hlen, len(data))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+hlen], &raw); err != nil {
		return nil, fmt.Errorf("%w: header JSON: %v", ErrFormat, err)
	}
	body := data[8+hlen:]
	f := New()
	type span struct {
		name       string
		start, end int64
	}
	var spans []span
	for name, msg := range raw {
		if name == MetadataKey {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("%w: metadata must map strings to strings: %v", ErrFormat, err)
			}
			if f.Metadata == nil {
				f.Metadata = map[string]string{}
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%w: tensor %s: %v", ErrFormat, name, err)
		}
		n, err := numel(e.Shape)
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %s: %v", ErrFormat, name, err)
		}
		size, ok := dtypeSize[e.Dtype]
		if !ok {
			return nil, fmt.Errorf("%w: tensor %s: unsupported dtype %q (want F32, F16 or BF16)", ErrFormat, name, e.Dtype)
		}
		start, end := e.DataOffsets[0], e.DataOffsets[1]
		if start < 0 || end < start || end > int64(len(body)) {
			return nil, fmt.Errorf("%w: tensor %s: byte range [%d,%d) outside the %d data bytes", ErrFormat, name, start, end, len(body))
		}
		if end-start != int64(n*size) {
			return nil, fmt.Errorf("%w: tensor %s: shape %v %s needs %d bytes, range holds %d", ErrFormat, name, e.Shape, e.Dtype, n*size, end-start)
		}
		f.Tensors[name] = Tensor{Shape: e.Shape, Data: decodeValues(body[start:end], e.Dtype, n)}
		spans = append(spans, span{name, start, end})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return nil, fmt.Errorf("%w: tensors %s and %s overlap", ErrFormat, spans[i-1].name, spans[i].name)
		}
	}
	return f, nil
}

var dtypeSize = map[string]int{"F32": 4, "F16": 2, "BF16": 2}

func decodeValues(b []byte, dtype string, n int) []float32 {
	out := make([]float32, n)
	switch dtype {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case "F16":
		for i := range out {
			out[i] = halfToFloat(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}
	return out
}

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		v := float32(mant) / 1024 / 16384
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// Read reads and decodes the safetensors file at path.
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	f, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return f, nil
}

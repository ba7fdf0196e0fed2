package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// safetensorsHeader builds a safetensors header for infos in name order;
// tensors are laid out back to back in that order.
func safetensorsHeader(infos []TensorInfo, metadata map[string]string) ([]byte, error) {
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range infos {
		if t.Name == "" || t.Name == "__metadata__" {
			return nil, fmt.Errorf("invalid tensor name %q", t.Name)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		es, ok := storedSize[string(t.Dtype)]
		if !ok {
			return nil, fmt.Errorf("tensor %s: unknown dtype %q", t.Name, t.Dtype)
		}
		end := off + int64(t.Numel())*es
		header[t.Name] = stHeaderEntry{Dtype: string(t.Dtype), Shape: shape, DataOffsets: [2]int64{off, end}}
		off = end
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	if pad := len(hj) % 8; pad != 0 {
		hj = append(hj, bytes.Repeat([]byte(" "), 8-pad)...)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hj)))
	return append(out, hj...), nil
}

// encodeSafetensors writes the tensors of s to w in their stored dtypes,
// one tensor in memory at a time.
func encodeSafetensors(w io.Writer, s Source, metadata map[string]string) error {
	var infos []TensorInfo
	var largest int64
	for _, n := range s.Names() {
		ti, _ := s.Info(n)
		if ti.Dtype.Size() == 0 {
			return fmt.Errorf("tensor %s: dtype %q cannot be written", n, ti.Dtype)
		}
		infos = append(infos, ti)
		largest = max(largest, ti.Bytes())
	}
	h, err := safetensorsHeader(infos, metadata)
	if err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	buf := make([]byte, largest)
	for _, t := range infos {
		b := buf[:t.Bytes()]
		if err := s.ReadRaw(t.Name, b); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// WriteSafetensors writes every tensor of s to path as safetensors, in the
// dtype each is stored in (values stay bit-exact), atomically: a temporary
// file beside path is renamed into place when complete.
func WriteSafetensors(path string, s Source, metadata map[string]string) error {
	af, err := atomicfile.Create(path)
	if err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	if err := encodeSafetensors(af, s, metadata); err != nil {
		af.Abort()
		return fmt.Errorf("weights: write %s: %w", path, err)
	}
	if err := af.Commit(); err != nil {
		return fmt.Errorf("weights: write %s: %w", path, err)
	}
	return nil
}

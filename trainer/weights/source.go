package weights

import (
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
)

// Source is one component's tensors under diffusers' state-dict names:
//   - unet: UNet2DConditionModel keys (a pseudo-3D folder: the recipe's names as stored);
//   - vae: AutoencoderKL keys, mid attention as linears (to_q/to_k/to_v/to_out.0,
//     [C,C]; the 1x1 convs of single files reshaped);
//   - text_encoder: transformers-5 CLIPTextModel keys without the "text_model." prefix.
type Source interface {
	Names() []string // sorted
	Info(name string) (TensorInfo, bool)
	// Read converts the tensor to float32 into dst; len(dst) is its element count.
	Read(name string, dst []float32) error
	// ReadRaw copies the tensor's stored little-endian bytes (Info's dtype)
	// into dst; len(dst) is its byte size.
	ReadRaw(name string, dst []byte) error
	Close() error
}

// sharedFile is an open weight file shared by the sources made from it; it is
// closed when the last of them is.
type sharedFile struct {
	path string
	f    *os.File
	size int64
	mu   sync.Mutex
	refs int
}

func openShared(path string) (*sharedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: is a folder, not a weight file", path)
	}
	return &sharedFile{path: path, f: f, size: st.Size(), refs: 1}, nil
}

func (s *sharedFile) retain() { s.mu.Lock(); s.refs++; s.mu.Unlock() }

func (s *sharedFile) release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs == 0 {
		return s.f.Close()
	}
	return nil
}

// entry locates one tensor's bytes in a file.
type entry struct {
	file  *sharedFile
	off   int64 // absolute offset of the first byte
	dtype Dtype
	shape []int // the shape exposed (a reshape of the stored one keeps the bytes)
	orig  string
}

func (e *entry) bytes() int64 { return int64(numel(e.shape)) * int64(e.dtype.Size()) }

// tensorSet is the Source every layout builds: names mapped to byte ranges.
type tensorSet struct {
	names  []string
	m      map[string]*entry
	files  []*sharedFile
	closed bool
}

func newTensorSet(m map[string]*entry) *tensorSet {
	ts := &tensorSet{m: m}
	seen := map[*sharedFile]bool{}
	for n, e := range m {
		ts.names = append(ts.names, n)
		if !seen[e.file] {
			seen[e.file] = true
			e.file.retain()
			ts.files = append(ts.files, e.file)
		}
	}
	sort.Strings(ts.names)
	return ts
}

func (t *tensorSet) Names() []string { return append([]string(nil), t.names...) }

func (t *tensorSet) Info(name string) (TensorInfo, bool) {
	e, ok := t.m[name]
	if !ok {
		return TensorInfo{}, false
	}
	return TensorInfo{Name: name, Dtype: e.dtype, Shape: append([]int(nil), e.shape...)}, true
}

func (t *tensorSet) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	var first error
	for _, f := range t.files {
		if err := f.release(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// chunkSize bounds the staging buffer of a converting read.
const chunkSize = 1 << 20

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

func (t *tensorSet) lookup(name string) (*entry, error) {
	if t.closed {
		return nil, fmt.Errorf("weights: read %s: source closed", name)
	}
	e, ok := t.m[name]
	if !ok {
		return nil, fmt.Errorf("weights: no tensor %s", name)
	}
	return e, nil
}

func (t *tensorSet) Read(name string, dst []float32) error {
	e, err := t.lookup(name)
	if err != nil {
		return err
	}
	n := numel(e.shape)
	if len(dst) != n {
		return fmt.Errorf("weights %s: tensor %s has %d elements, destination %d", e.file.path, name, n, len(dst))
	}
	size := e.dtype.Size()
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	per := chunkSize / size
	for i := 0; i < n; i += per {
		k := min(per, n-i)
		b := (*bp)[:k*size]
		if err := e.readAt(b, int64(i*size)); err != nil {
			return fmt.Errorf("weights %s: tensor %s: %w", e.file.path, e.name(name), err)
		}
		decodeInto(dst[i:i+k], b, e.dtype)
	}
	return nil
}

func (t *tensorSet) ReadRaw(name string, dst []byte) error {
	e, err := t.lookup(name)
	if err != nil {
		return err
	}
	if int64(len(dst)) != e.bytes() {
		return fmt.Errorf("weights %s: tensor %s has %d bytes, destination %d", e.file.path, name, e.bytes(), len(dst))
	}
	if err := e.readAt(dst, 0); err != nil {
		return fmt.Errorf("weights %s: tensor %s: %w", e.file.path, e.name(name), err)
	}
	return nil
}

func (e *entry) name(n string) string {
	if e.orig != "" && e.orig != n {
		return n + " (stored as " + e.orig + ")"
	}
	return n
}

func (e *entry) readAt(b []byte, rel int64) error {
	off := e.off + rel
	got, err := e.file.f.ReadAt(b, off)
	if got == len(b) {
		return nil
	}
	if err == io.EOF || err == nil {
		return fmt.Errorf("truncated: bytes [%d,%d) needed, the file ends at %d", off, off+int64(len(b)), off+int64(got))
	}
	return err
}

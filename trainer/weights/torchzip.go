package weights

import (
	"archive/zip"
	"fmt"
	"io"
	"path"
	"strings"
)

// readTorchZip reads the tensor index of a torch.save zip file (PyTorch 1.6
// and later): ARCHIVE/data.pkl, a pickle of the state dict whose storages
// are persistent ids naming ARCHIVE/data/KEY entries stored uncompressed.
// The pickle goes through the restricted reader; tensors point into the
// entries' bytes in the file.
func readTorchZip(sf *sharedFile) (map[string]rawTensor, error) {
	return readTorchZipFrom(sf.f, sf.size)
}

func readTorchZipFrom(r io.ReaderAt, size int64) (map[string]rawTensor, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("not a readable PyTorch zip container (truncated or damaged): %v", err)
	}
	var pkl *zip.File
	entries := map[string]*zip.File{}
	for _, f := range zr.File {
		entries[f.Name] = f
		if path.Base(f.Name) == "data.pkl" && strings.Count(f.Name, "/") <= 1 {
			if pkl != nil {
				return nil, fmt.Errorf("zip container holds two pickles (%s, %s)", pkl.Name, f.Name)
			}
			pkl = f
		}
	}
	if pkl == nil {
		return nil, fmt.Errorf("zip container without data.pkl: not a torch.save file")
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	if bo, ok := entries[prefix+"byteorder"]; ok {
		b, err := readSmall(bo, 16)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(b)); s != "little" {
			return nil, fmt.Errorf("byte order %q: only little-endian files are supported", s)
		}
	}
	data, err := readSmall(pkl, maxPickleBytes)
	if err != nil {
		return nil, err
	}
	obj, err := unpickle(data, storageResolver())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pkl.Name, err)
	}
	sd, ok := obj.(*pyDict)
	if !ok {
		return nil, fmt.Errorf("the pickle holds a %s, not a state dict", describe(obj))
	}
	if inner, ok := sd.get("state_dict"); ok {
		if d, ok := inner.(*pyDict); ok {
			sd = d
		}
	}
	out := map[string]rawTensor{}
	for i, k := range sd.keys {
		name, ok := k.(string)
		t, isTensor := sd.vals[i].(*pyTensor)
		if !ok || !isTensor {
			continue // global_step, epoch and other bookkeeping
		}
		rt, err := tensorBytes(name, t, prefix, entries, size)
		if err != nil {
			return nil, err
		}
		out[name] = rt
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the pickle holds no tensors")
	}
	return out, nil
}

// tensorBytes locates a tensor's bytes: its storage's zip entry, stored
// uncompressed, holding at least the tensor's range.
func tensorBytes(name string, t *pyTensor, prefix string, entries map[string]*zip.File, fileSize int64) (rawTensor, error) {
	es := storedSize[t.storage.dtype]
	f, ok := entries[prefix+"data/"+t.storage.key]
	if !ok {
		return rawTensor{}, fmt.Errorf("tensor %s: storage %s missing from the zip container (truncated file?)", name, t.storage.key)
	}
	if f.Method != zip.Store {
		return rawTensor{}, fmt.Errorf("tensor %s: storage entry %s is compressed; torch.save stores them uncompressed", name, f.Name)
	}
	if !t.contiguous() {
		return rawTensor{}, fmt.Errorf("tensor %s: non-contiguous (shape %v, stride %v); save it with .contiguous()", name, t.shape, t.stride)
	}
	n, err := checkedNumel(t.shape)
	if err != nil {
		return rawTensor{}, fmt.Errorf("tensor %s: %v", name, err)
	}
	if t.offset > maxElements || t.offset+n > t.storage.numel || t.storage.numel > maxElements {
		return rawTensor{}, fmt.Errorf("tensor %s: elements [%d,%d) outside its storage of %d", name, t.offset, t.offset+n, t.storage.numel)
	}
	if int64(f.UncompressedSize64) < t.storage.numel*es || f.UncompressedSize64 != f.CompressedSize64 {
		return rawTensor{}, fmt.Errorf("tensor %s: storage entry %s holds %d bytes, %d needed", name, f.Name, f.UncompressedSize64, t.storage.numel*es)
	}
	off, err := f.DataOffset()
	if err != nil {
		return rawTensor{}, fmt.Errorf("tensor %s: storage entry %s: %v", name, f.Name, err)
	}
	start := off + t.offset*es
	if off < 0 || start+n*es > fileSize {
		return rawTensor{}, fmt.Errorf("tensor %s: bytes [%d,%d) beyond the end of the file (%d bytes): truncated", name, start, start+n*es, fileSize)
	}
	return rawTensor{name: name, dtype: t.storage.dtype, shape: t.shape, off: start, size: n * es}, nil
}

// readSmall reads a zip entry of at most limit bytes.
func readSmall(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", f.Name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", f.Name, limit)
	}
	return b, nil
}

// describe names a pickle value's kind for messages.
func describe(v any) string {
	switch x := v.(type) {
	case pyTuple:
		return fmt.Sprintf("tuple of %d", len(x))
	case *pyList:
		return fmt.Sprintf("list of %d", len(x.items))
	case *pyDict:
		return fmt.Sprintf("dict of %d", len(x.keys))
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return fmt.Sprintf("%q", x)
	case pyGlobal:
		return x.String()
	}
	return fmt.Sprintf("%T", v)
}

// storageResolver resolves torch.save's persistent ids,
// ('storage', torch.XStorage, key, location, numel), to storages.
func storageResolver() func(pid any) (any, error) {
	storages := map[string]*pyStorage{}
	return func(pid any) (any, error) {
		t, ok := pid.(pyTuple)
		if !ok || len(t) != 5 {
			return nil, fmt.Errorf("persistent id %v is not a storage reference", describe(pid))
		}
		tag, _ := t[0].(string)
		typ, _ := t[1].(pyGlobal)
		key, _ := t[2].(string)
		n, ok := t[4].(int64)
		dt, known := storageTypes[typ.name]
		if tag != "storage" || typ.module != "torch" || !known || key == "" || !ok || n < 0 {
			return nil, fmt.Errorf("persistent id %v is not a storage reference", describe(pid))
		}
		if s, ok := storages[key]; ok {
			if s.dtype != dt || s.numel != n {
				return nil, fmt.Errorf("storage %s referenced with two types or sizes", key)
			}
			return s, nil
		}
		s := &pyStorage{dtype: dt, key: key, numel: n}
		storages[key] = s
		return s, nil
	}
}

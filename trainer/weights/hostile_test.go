package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pk builds pickles opcode by opcode.
type pk []byte

func (p pk) proto() pk             { return append(p, 0x80, 2) }
func (p pk) op(b ...byte) pk       { return append(p, b...) }
func (p pk) global(m, n string) pk { return append(append(p, 'c'), m+"\n"+n+"\n"...) }
func (p pk) str(s string) pk {
	p = append(p, 'X')
	p = binary.LittleEndian.AppendUint32(p, uint32(len(s)))
	return append(p, s...)
}
func (p pk) int1(v byte) pk { return append(p, 'K', v) }

// call pushes fn(args...) for a global fn and string arguments (REDUCE).
func (p pk) call(m, n string, args ...string) pk {
	p = p.global(m, n).op('(')
	for _, a := range args {
		p = p.str(a)
	}
	return p.op('t', 'R')
}

// hostilePickles are pickles that would run a command creating marker if a
// general unpickler loaded them, each with the global that must be named.
func hostilePickles(marker string) map[string]struct {
	data   pk
	global string
} {
	cmd := "touch " + marker
	py := "open(" + `"` + marker + `"` + ",'w').close()"
	type h = struct {
		data   pk
		global string
	}
	stateDictWith := func(value pk) pk { // a state dict whose one value is hostile
		return pk{}.proto().op('}', '(').str("conv_in.weight").op(value...).op('u', '.')
	}
	return map[string]h{
		"os.system REDUCE":  {pk{}.proto().call("os", "system", cmd).op('.'), "os.system"},
		"posix.system":      {pk{}.proto().call("posix", "system", cmd).op('.'), "posix.system"},
		"builtins.eval":     {pk{}.proto().call("builtins", "eval", py).op('.'), "builtins.eval"},
		"__builtin__.eval":  {pk{}.proto().call("__builtin__", "eval", py).op('.'), "__builtin__.eval"},
		"builtins.exec":     {pk{}.proto().call("builtins", "exec", py).op('.'), "builtins.exec"},
		"subprocess.Popen":  {pk{}.proto().global("subprocess", "Popen").op('(', '(').str("touch").str(marker).op('l', 't', 'R', '.'), "subprocess.Popen"},
		"nested in a value": {stateDictWith(pk{}.call("builtins", "exec", py)), "builtins.exec"},
		"nested in tensor args": {stateDictWith(pk{}.global("torch._utils", "_rebuild_tensor_v2").op('(').
			op(pk{}.call("os", "system", cmd)...).op('t', 'R')), "os.system"},
		"STACK_GLOBAL": {pk{}.op(0x80, 4).op(0x8c, 2).op([]byte("os")...).op(0x8c, 6).op([]byte("system")...).op(0x93).
			op('(').str(cmd).op('t', 'R', '.'), "os.system"},
		"INST":          {pk{}.proto().op('(').str(cmd).op('i').op([]byte("os\nsystem\n")...).op('.'), "os.system"},
		"getattr chain": {pk{}.proto().call("builtins", "getattr").op('.'), "builtins.getattr"},
		"torch.load":    {pk{}.proto().call("torch.storage", "_load_from_bytes", "x").op('.'), "torch.storage._load_from_bytes"},
		"numpy":         {pk{}.proto().call("numpy.core.multiarray", "_reconstruct").op('.'), "numpy.core.multiarray._reconstruct"},
		"after a good prefix": {pk{}.proto().global("collections", "OrderedDict").op(')', 'R', '0').
			call("os", "system", cmd).op('.'), "os.system"},
	}
}

func TestHostilePicklesRunNothing(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "executed")
	for name, h := range hostilePickles(marker) {
		t.Run(name, func(t *testing.T) {
			_, err := unpickle(h.data, func(any) (any, error) { return nil, errors.New("no") })
			var ge *GlobalError
			if !errors.As(err, &ge) || ge.Global != h.global {
				t.Fatalf("error %v, want a GlobalError naming %s", err, h.global)
			}
			// the same pickle inside a torch zip container, opened as a model
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".bin")
			writeTorchZip(t, p, h.data, nil)
			m, err := Open(p)
			if err == nil {
				m.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), h.global) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %q does not name %s and the file", err, h.global)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the hostile pickle ran")
			}
		})
	}
}

func TestPickleRefusesOtherOpcodes(t *testing.T) {
	for name, data := range map[string]pk{
		"EXT1":               pk{}.proto().op(0x82, 1, '.'),
		"OBJ":                pk{}.proto().op('(').global("collections", "OrderedDict").op('o', '.'),
		"PERSID text":        pk{}.proto().op('P').op([]byte("0\n.")...),
		"BUILD on a global":  pk{}.proto().global("torch", "FloatStorage").op('}', 'b', '.'),
		"REDUCE non-global":  pk{}.proto().str("x").op(')', 'R', '.'),
		"REDUCE non-tuple":   pk{}.proto().global("collections", "OrderedDict").str("x").op('R', '.'),
		"truncated":          pk{}.proto().op('(').str("abc")[:8],
		"no STOP":            pk{}.proto().op('}'),
		"string beyond data": pk{}.proto().op('X', 0xff, 0xff, 0xff, 0x7f, 'a', '.'),
		"empty":              pk{},
		"memo miss":          pk{}.proto().op('h', 9, '.'),
		"pop below mark":     pk{}.proto().op('}', '(', 0x86, '.'),
		"too many values":    append(pk{}.proto(), bytes.Repeat([]byte{'}'}, maxValues+10)...),
	} {
		t.Run(name, func(t *testing.T) {
			if v, err := unpickle(data, nil); err == nil {
				t.Fatalf("accepted, gave %s", describe(v))
			}
		})
	}
}

// writeTorchZip writes a torch.save-style zip container with the pickle and
// storage entries (stored uncompressed).
func writeTorchZip(t *testing.T, path string, pickle []byte, storages map[string][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	put := func(name string, b []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	put("archive/data.pkl", pickle)
	put("archive/byteorder", []byte("little"))
	for k, b := range storages {
		put("archive/data/"+k, b)
	}
	put("archive/version", []byte("3\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// A hand-made state dict: an OrderedDict (with BUILD of _metadata), a
// parameter, a view at an offset into a shared storage, a BF16 storage.
func TestPickleStateDictForms(t *testing.T) {
	p := pk{}.proto().global("collections", "OrderedDict").op(')', 'R', '(')
	p = tensor(p.str("a"), "FloatStorage", "0", 6, 0, 2, 3)
	p = tensor(p.str("b"), "FloatStorage", "0", 6, 4, 2)
	p = p.str("c").global("torch._utils", "_rebuild_parameter")
	p = tensor(p.op('('), "BFloat16Storage", "1", 2, 0, 2).op(0x88).global("collections", "OrderedDict").op(')', 'R', 't', 'R')
	p = p.op('u').op('}').str("_metadata").op('}', 's', 'b', '.')
	f32 := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, mathFloat32bits(v))
		}
		return b
	}
	path := filepath.Join(t.TempDir(), "sd.bin")
	writeTorchZip(t, path, p, map[string][]byte{"0": f32(1, 2, 3, 4, 5, 6), "1": {0x80, 0x3f, 0x00, 0xc0}})
	sf, raws, err := readWeightFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.release()
	ts := newTensorSet(floatEntries(sf, raws, new([]string)))
	defer ts.Close()
	if got := readAll(t, ts, "a"); len(got) != 6 || got[5] != 6 {
		t.Fatalf("a = %v", got)
	}
	if got := readAll(t, ts, "b"); len(got) != 2 || got[0] != 5 || got[1] != 6 {
		t.Fatalf("b = %v (a view at offset 4)", got)
	}
	if got := readAll(t, ts, "c"); got[0] != 1 || got[1] != -2 {
		t.Fatalf("c = %v (bf16 parameter)", got)
	}
	// a view reaching past its storage, or a missing storage entry, is an error
	bad := tensor(pk{}.proto().op('}').str("x"), "FloatStorage", "0", 6, 5, 2).op('s', '.')
	writeTorchZip(t, path, bad, map[string][]byte{"0": f32(1, 2, 3, 4, 5, 6)})
	if _, _, err := readWeightFile(path); err == nil || !strings.Contains(err.Error(), "outside its storage") {
		t.Fatalf("view past its storage: %v", err)
	}
	writeTorchZip(t, path, bad, nil)
	if _, _, err := readWeightFile(path); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing storage: %v", err)
	}
}

// tensor appends a _rebuild_tensor_v2 call of a contiguous tensor on storage key.
func tensor(p pk, storageType, key string, numel byte, off byte, shape ...byte) pk {
	p = p.global("torch._utils", "_rebuild_tensor_v2").op('(')
	p = p.op('(').str("storage").global("torch", storageType).str(key).str("cpu").int1(numel).op('t', 'Q')
	p = p.int1(off).op('(')
	for _, s := range shape {
		p = p.int1(s)
	}
	p = p.op('t', '(')
	stride := byte(1)
	strides := make([]byte, len(shape))
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = stride
		stride *= shape[i]
	}
	for _, s := range strides {
		p = p.int1(s)
	}
	p = p.op('t', 0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R')
	return p
}

package shards

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// arrow-go's IPC reader trusts the counts in a file's footer: a corrupt
// footer can make it allocate hundreds of gigabytes (a fatal error, not a
// panic we could recover) or recurse without end through nested fields. So
// before a shard reaches arrow-go, checkFooter walks the footer's
// flatbuffer, bounds every vector by the bytes that could hold it, and
// requires the shape of our schema (flat fields, no dictionaries).

var arrowMagic = []byte("ARROW1")

// Limits on what a shard footer may hold.
const (
	maxMetadataKeys = 1024
	maxFields       = 64
)

var errFooter = errors.New("bad footer")

// checkFooter verifies the footer of an Arrow IPC file with flat fields.
func checkFooter(data []byte) error { return checkFooterDepth(data, 0) }

// checkFooterDepth verifies a footer whose fields may nest childDepth
// levels (a latent shard's fixed-size lists: 1), each with one child.
func checkFooterDepth(data []byte, childDepth int) error {
	n := len(data)
	if n < 6+2+4+6 || string(data[:6]) != string(arrowMagic) || string(data[n-6:]) != string(arrowMagic) {
		return fmt.Errorf("%w: not an Arrow IPC file (magic bytes missing)", errFooter)
	}
	flen := int64(int32(binary.LittleEndian.Uint32(data[n-10:])))
	if flen <= 0 || flen > int64(n-10-8) {
		return fmt.Errorf("%w: footer length %d in a %d-byte file", errFooter, flen, n)
	}
	fb := flatbuf(data[n-10-int(flen) : n-10])
	root, err := fb.root()
	if err != nil {
		return err
	}
	if _, cnt, err := root.vector(2, 24); err != nil || cnt != 0 {
		return fmt.Errorf("%w: dictionaries (%d): %v", errFooter, cnt, err)
	}
	if _, _, err := root.vector(3, 24); err != nil {
		return fmt.Errorf("%w: record batches: %v", errFooter, err)
	}
	if err := fb.keyValues(root, 4); err != nil {
		return err
	}
	schema, ok, err := root.table(1)
	if err != nil || !ok {
		return fmt.Errorf("%w: schema missing: %v", errFooter, err)
	}
	if err := fb.keyValues(schema, 2); err != nil {
		return err
	}
	if _, _, err := schema.vector(3, 8); err != nil {
		return fmt.Errorf("%w: features: %v", errFooter, err)
	}
	start, cnt, err := schema.vector(1, 4)
	if err != nil || cnt > maxFields {
		return fmt.Errorf("%w: %d fields: %v", errFooter, cnt, err)
	}
	for i := 0; i < cnt; i++ {
		if err := fb.checkField(start+4*i, i, childDepth); err != nil {
			return err
		}
	}
	return nil
}

// checkField verifies the field table referenced at ref (field i) and its
// children, at most depth levels of one child each.
func (fb flatbuf) checkField(ref, i, depth int) error {
	f, err := fb.tableRef(ref)
	if err != nil {
		return fmt.Errorf("%w: field %d: %v", errFooter, i, err)
	}
	if _, _, err := f.str(0); err != nil {
		return fmt.Errorf("%w: field %d name: %v", errFooter, i, err)
	}
	if _, ok, err := f.table(3); err != nil || !ok {
		return fmt.Errorf("%w: field %d type: %v", errFooter, i, err)
	}
	if _, ok, err := f.table(4); err != nil || ok {
		return fmt.Errorf("%w: field %d is dictionary-encoded", errFooter, i)
	}
	cstart, cnt, err := f.vector(5, 4)
	if err != nil || cnt > min(depth, 1) {
		return fmt.Errorf("%w: field %d has %d children", errFooter, i, cnt)
	}
	for c := 0; c < cnt; c++ {
		if err := fb.checkField(cstart+4*c, i, depth-1); err != nil {
			return err
		}
	}
	return fb.keyValues(f, 6)
}

// flatbuf is a flatbuffer to verify.
type flatbuf []byte

// fbTable is a verified table: its position and its vtable.
type fbTable struct {
	b          flatbuf
	pos, vt    int
	vtLen, obj int
}

func (b flatbuf) u32(pos int) (uint32, error) {
	if pos < 0 || pos+4 > len(b) {
		return 0, fmt.Errorf("offset %d out of %d bytes", pos, len(b))
	}
	return binary.LittleEndian.Uint32(b[pos:]), nil
}

func (b flatbuf) root() (fbTable, error) {
	off, err := b.u32(0)
	if err != nil {
		return fbTable{}, fmt.Errorf("%w: %v", errFooter, err)
	}
	return b.tableAt(int(off))
}

// tableRef verifies the table referenced by the offset stored at p.
func (b flatbuf) tableRef(p int) (fbTable, error) {
	off, err := b.u32(p)
	if err != nil {
		return fbTable{}, err
	}
	if int64(p)+int64(off) >= int64(len(b)) {
		return fbTable{}, fmt.Errorf("reference at %d points past the end", p)
	}
	return b.tableAt(p + int(off))
}

// tableAt verifies the table at pos (pos holds the table, not a reference).
func (b flatbuf) tableAt(pos int) (fbTable, error) {
	so, err := b.u32(pos)
	if err != nil {
		return fbTable{}, err
	}
	vt := int64(pos) - int64(int32(so))
	if vt < 0 || vt+4 > int64(len(b)) {
		return fbTable{}, fmt.Errorf("vtable at %d out of %d bytes", vt, len(b))
	}
	t := fbTable{b: b, pos: pos, vt: int(vt)}
	t.vtLen = int(binary.LittleEndian.Uint16(b[t.vt:]))
	t.obj = int(binary.LittleEndian.Uint16(b[t.vt+2:]))
	if t.vtLen < 4 || t.vtLen%2 != 0 || t.vt+t.vtLen > len(b) || t.pos+t.obj > len(b) {
		return fbTable{}, fmt.Errorf("table at %d: bad vtable", pos)
	}
	return t, nil
}

// field returns the absolute position of field i (size bytes), or -1 if
// absent.
func (t fbTable) field(i, size int) (int, error) {
	e := 4 + 2*i
	if e+2 > t.vtLen {
		return -1, nil
	}
	off := int(binary.LittleEndian.Uint16(t.b[t.vt+e:]))
	if off == 0 {
		return -1, nil
	}
	if off+size > t.obj {
		return 0, fmt.Errorf("field %d outside its table", i)
	}
	return t.pos + off, nil
}

// ref follows the offset stored in field i.
func (t fbTable) ref(i int) (int, bool, error) {
	p, err := t.field(i, 4)
	if err != nil || p < 0 {
		return 0, false, err
	}
	off, err := t.b.u32(p)
	if err != nil {
		return 0, false, err
	}
	target := int64(p) + int64(off)
	if target >= int64(len(t.b)) {
		return 0, false, fmt.Errorf("field %d points past the end", i)
	}
	return int(target), true, nil
}

// table returns the table referenced by field i.
func (t fbTable) table(i int) (fbTable, bool, error) {
	p, ok, err := t.ref(i)
	if err != nil || !ok {
		return fbTable{}, ok, err
	}
	s, err := t.b.tableAt(p)
	return s, true, err
}

// vector checks the vector in field i (elements of elem bytes) and returns
// the position of its first element and its length (0 when absent).
func (t fbTable) vector(i, elem int) (int, int, error) {
	p, ok, err := t.ref(i)
	if err != nil || !ok {
		return 0, 0, err
	}
	return t.b.vectorAt(p, elem)
}

func (b flatbuf) vectorAt(p, elem int) (int, int, error) {
	n, err := b.u32(p)
	if err != nil {
		return 0, 0, err
	}
	if int64(p)+4+int64(n)*int64(elem) > int64(len(b)) {
		return 0, 0, fmt.Errorf("vector of %d elements at %d overruns %d bytes", n, p, len(b))
	}
	return p + 4, int(n), nil
}

// str checks the string in field i.
func (t fbTable) str(i int) (int, int, error) { return t.vector(i, 1) }

// keyValues checks the KeyValue vector in field i of t.
func (b flatbuf) keyValues(t fbTable, i int) error {
	start, cnt, err := t.vector(i, 4)
	if err != nil || cnt > maxMetadataKeys {
		return fmt.Errorf("%w: metadata of %d keys: %v", errFooter, cnt, err)
	}
	for k := 0; k < cnt; k++ {
		kv, err := b.tableRef(start + 4*k)
		if err != nil {
			return fmt.Errorf("%w: metadata %d: %v", errFooter, k, err)
		}
		for f := 0; f < 2; f++ {
			if _, _, err := kv.str(f); err != nil {
				return fmt.Errorf("%w: metadata %d: %v", errFooter, k, err)
			}
		}
	}
	return nil
}

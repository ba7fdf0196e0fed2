package weights

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The restricted pickle reader. It interprets the opcodes a PyTorch state
// dict uses and builds plain Go values; globals are names it knows, never
// looked up or called: every global outside allowedGlobals is refused, by
// name, the moment it appears. Nothing in a pickle can run code here.

// pyNone is Python's None.
type pyNone struct{}

// pyTuple, pyList and pyDict are Python's containers; a dict keeps its items
// in insertion order.
type (
	pyTuple []any
	pyList  struct{ items []any }
	pyDict  struct {
		keys, vals []any
		index      map[string]int // position of each string key
	}
)

// pyGlobal is an allowed global, a name only.
type pyGlobal struct{ module, name string }

func (g pyGlobal) String() string { return g.module + "." + g.name }

// pyStorage is a persistent-id storage reference of torch.save.
type pyStorage struct {
	dtype string // F32, F16, ...
	key   string
	numel int64
}

// pyTensor is a rebuilt tensor: a view into a storage.
type pyTensor struct {
	storage *pyStorage
	offset  int64
	shape   []int
	stride  []int64
}

// storageTypes maps torch's storage classes to safetensors dtype names.
var storageTypes = map[string]string{
	"FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16", "DoubleStorage": "F64",
	"LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
	"ByteStorage": "U8", "BoolStorage": "BOOL",
}

// allowedGlobals are the only globals a pickle may name.
var allowedGlobals = map[string]bool{
	"collections.OrderedDict":                    true,
	"torch._utils._rebuild_tensor":               true,
	"torch._utils._rebuild_tensor_v2":            true,
	"torch._utils._rebuild_parameter":            true,
	"torch._utils._rebuild_parameter_with_state": true,
	"torch._tensor._rebuild_from_type_v2":        true,
	"torch.Tensor":                               true,
	"torch.nn.parameter.Parameter":               true,
	"_codecs.encode":                             true,
}

func isAllowedGlobal(module, name string) bool {
	if module == "torch" {
		if _, ok := storageTypes[name]; ok {
			return true
		}
	}
	return allowedGlobals[module+"."+name]
}

// GlobalError is a pickle naming a global the reader does not allow.
type GlobalError struct{ Global string }

func (e *GlobalError) Error() string {
	return fmt.Sprintf("pickle refers to global %s, which is not part of a PyTorch state dict; refused (nothing was executed)", e.Global)
}

// pickle limits: a state dict pickle is a few MB at most.
const (
	maxPickleBytes = 64 << 20
	maxMemo        = 1 << 22
	maxValues      = 1 << 22 // values pushed in all; SD-1.5's pickle pushes ~30k
)

type unpickler struct {
	data    []byte
	pos     int
	stack   []any
	marks   []int
	memo    map[int64]any
	persist func(pid any) (any, error)
	pushes  int
}

// unpickle interprets a pickle; persist resolves persistent ids (BINPERSID).
func unpickle(data []byte, persist func(pid any) (any, error)) (any, error) {
	if len(data) > maxPickleBytes {
		return nil, fmt.Errorf("pickle of %d bytes exceeds the %d-byte limit", len(data), maxPickleBytes)
	}
	u := &unpickler{data: data, memo: map[int64]any{}, persist: persist}
	return u.run()
}

func (u *unpickler) errf(op byte, format string, args ...any) error {
	return fmt.Errorf("pickle opcode %q at byte %d: %s", op, u.pos, fmt.Sprintf(format, args...))
}

func (u *unpickler) take(n int) ([]byte, bool) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, false
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, true
}

func (u *unpickler) line() (string, bool) {
	i := strings.IndexByte(string(u.data[u.pos:min(len(u.data), u.pos+4096)]), '\n')
	if i < 0 {
		return "", false
	}
	s := string(u.data[u.pos : u.pos+i])
	u.pos += i + 1
	return s, true
}

func (u *unpickler) pop() (any, bool) {
	if len(u.stack) == 0 || (len(u.marks) > 0 && len(u.stack) <= u.marks[len(u.marks)-1]) {
		return nil, false
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, true
}

func (u *unpickler) top() (any, bool) {
	if len(u.stack) == 0 || (len(u.marks) > 0 && len(u.stack) <= u.marks[len(u.marks)-1]) {
		return nil, false
	}
	return u.stack[len(u.stack)-1], true
}

// popMark pops the items above the last mark and the mark.
func (u *unpickler) popMark() ([]any, bool) {
	if len(u.marks) == 0 {
		return nil, false
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, true
}

// memoIndex reads the memo index operand of a PUT or GET opcode.
func (u *unpickler) memoIndex(op byte) (int64, error) {
	switch op {
	case 'q', 'h':
		b, ok := u.take(1)
		if !ok {
			return 0, u.errf(op, "truncated")
		}
		return int64(b[0]), nil
	case 'r', 'j':
		b, ok := u.take(4)
		if !ok {
			return 0, u.errf(op, "truncated")
		}
		return int64(binary.LittleEndian.Uint32(b)), nil
	case 0x94:
		return int64(len(u.memo)), nil
	}
	s, ok := u.line()
	v, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil {
		return 0, u.errf(op, "memo index %q", s)
	}
	return v, nil
}

func (u *unpickler) memoPut(idx int64, op byte) error {
	v, ok := u.top()
	if !ok {
		return u.errf(op, "empty stack")
	}
	if idx < 0 || (len(u.memo) >= maxMemo && u.memo[idx] == nil) {
		return u.errf(op, "memo index %d", idx)
	}
	u.memo[idx] = v
	return nil
}

func (u *unpickler) memoGet(idx int64, op byte) error {
	v, ok := u.memo[idx]
	if !ok {
		return u.errf(op, "memo index %d not set", idx)
	}
	u.stack = append(u.stack, v)
	return nil
}

func (u *unpickler) run() (any, error) {
	for {
		if u.pos >= len(u.data) {
			return nil, fmt.Errorf("pickle ends at byte %d without STOP (truncated)", u.pos)
		}
		op := u.data[u.pos]
		u.pos++
		short := func(n int) ([]byte, error) {
			b, ok := u.take(n)
			if !ok {
				return nil, u.errf(op, "truncated")
			}
			return b, nil
		}
		push := func(v any) { u.stack = append(u.stack, v) }
		if u.pushes++; u.pushes > maxValues {
			return nil, u.errf(op, "more than %d operations: too large for a state dict", maxValues)
		}
		switch op {
		case 0x80: // PROTO
			b, err := short(1)
			if err != nil {
				return nil, err
			}
			if b[0] > 5 {
				return nil, u.errf(op, "protocol %d", b[0])
			}
		case 0x95: // FRAME
			if _, err := short(8); err != nil {
				return nil, err
			}
		case '.': // STOP
			v, ok := u.pop()
			if !ok {
				return nil, u.errf(op, "empty stack")
			}
			return v, nil
		case '(': // MARK
			u.marks = append(u.marks, len(u.stack))
		case '0': // POP
			if _, ok := u.pop(); !ok {
				if _, ok := u.popMark(); !ok {
					return nil, u.errf(op, "empty stack")
				}
			}
		case '1': // POP_MARK
			if _, ok := u.popMark(); !ok {
				return nil, u.errf(op, "no mark")
			}
		case '2': // DUP
			v, ok := u.top()
			if !ok {
				return nil, u.errf(op, "empty stack")
			}
			push(v)
		case 'N':
			push(pyNone{})
		case 0x88:
			push(true)
		case 0x89:
			push(false)
		case 'J': // BININT
			b, err := short(4)
			if err != nil {
				return nil, err
			}
			push(int64(int32(binary.LittleEndian.Uint32(b))))
		case 'K': // BININT1
			b, err := short(1)
			if err != nil {
				return nil, err
			}
			push(int64(b[0]))
		case 'M': // BININT2
			b, err := short(2)
			if err != nil {
				return nil, err
			}
			push(int64(binary.LittleEndian.Uint16(b)))
		case 0x8a, 0x8b: // LONG1, LONG4
			var n int
			if op == 0x8a {
				b, err := short(1)
				if err != nil {
					return nil, err
				}
				n = int(b[0])
			} else {
				b, err := short(4)
				if err != nil {
					return nil, err
				}
				n = int(int32(binary.LittleEndian.Uint32(b)))
			}
			if n > 8 || n < 0 {
				return nil, u.errf(op, "integer of %d bytes", n)
			}
			b, err := short(n)
			if err != nil {
				return nil, err
			}
			var v uint64
			for i := n - 1; i >= 0; i-- {
				v = v<<8 | uint64(b[i])
			}
			if n > 0 && n < 8 && b[n-1]&0x80 != 0 {
				v |= ^uint64(0) << (8 * n)
			}
			push(int64(v))
		case 'I', 'L': // INT, LONG (text)
			s, ok := u.line()
			if !ok {
				return nil, u.errf(op, "unterminated")
			}
			s = strings.TrimSuffix(s, "L")
			switch s {
			case "01":
				push(true)
			case "00":
				push(false)
			default:
				v, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return nil, u.errf(op, "integer %q", s)
				}
				push(v)
			}
		case 'G': // BINFLOAT
			b, err := short(8)
			if err != nil {
				return nil, err
			}
			push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		case 'X', 0x8c, 0x8d, 'T', 'U', 'B', 'C', 0x8e, 0x96: // strings and bytes
			var n int64
			switch op {
			case 0x8c, 'U', 'C':
				b, err := short(1)
				if err != nil {
					return nil, err
				}
				n = int64(b[0])
			case 'X', 'T', 'B':
				b, err := short(4)
				if err != nil {
					return nil, err
				}
				n = int64(binary.LittleEndian.Uint32(b))
			default:
				b, err := short(8)
				if err != nil {
					return nil, err
				}
				n = int64(binary.LittleEndian.Uint64(b))
			}
			if n < 0 || n > int64(len(u.data)-u.pos) {
				return nil, u.errf(op, "length %d beyond the pickle", n)
			}
			b, _ := u.take(int(n))
			switch op {
			case 'X', 0x8c, 0x8d, 'T', 'U':
				push(string(b))
			default:
				push(append([]byte(nil), b...))
			}
		case ')':
			push(pyTuple{})
		case 't', 0x85, 0x86, 0x87: // TUPLE, TUPLE1..3
			var items []any
			if op == 't' {
				var ok bool
				if items, ok = u.popMark(); !ok {
					return nil, u.errf(op, "no mark")
				}
			} else {
				n := int(op - 0x84)
				if len(u.stack) < n || (len(u.marks) > 0 && len(u.stack)-n < u.marks[len(u.marks)-1]) {
					return nil, u.errf(op, "stack too short")
				}
				items = append([]any(nil), u.stack[len(u.stack)-n:]...)
				u.stack = u.stack[:len(u.stack)-n]
			}
			push(pyTuple(items))
		case ']':
			push(&pyList{})
		case 'l': // LIST
			items, ok := u.popMark()
			if !ok {
				return nil, u.errf(op, "no mark")
			}
			push(&pyList{items: items})
		case 'a', 'e': // APPEND, APPENDS
			var items []any
			if op == 'a' {
				v, ok := u.pop()
				if !ok {
					return nil, u.errf(op, "empty stack")
				}
				items = []any{v}
			} else {
				var ok bool
				if items, ok = u.popMark(); !ok {
					return nil, u.errf(op, "no mark")
				}
			}
			l, ok := u.top()
			lst, isList := l.(*pyList)
			if !ok || !isList {
				return nil, u.errf(op, "append to a %T", l)
			}
			lst.items = append(lst.items, items...)
		case '}':
			push(&pyDict{})
		case 'd': // DICT
			items, ok := u.popMark()
			if !ok || len(items)%2 != 0 {
				return nil, u.errf(op, "bad item count")
			}
			d := &pyDict{}
			for i := 0; i < len(items); i += 2 {
				d.set(items[i], items[i+1])
			}
			push(d)
		case 's', 'u': // SETITEM, SETITEMS
			var items []any
			if op == 's' {
				v, ok1 := u.pop()
				k, ok2 := u.pop()
				if !ok1 || !ok2 {
					return nil, u.errf(op, "empty stack")
				}
				items = []any{k, v}
			} else {
				var ok bool
				if items, ok = u.popMark(); !ok || len(items)%2 != 0 {
					return nil, u.errf(op, "bad item count")
				}
			}
			t, ok := u.top()
			d, isDict := t.(*pyDict)
			if !ok || !isDict {
				return nil, u.errf(op, "setitem on a %T", t)
			}
			for i := 0; i < len(items); i += 2 {
				d.set(items[i], items[i+1])
			}
		case 0x8f: // EMPTY_SET
			push(&pyList{})
		case 0x90: // ADDITEMS
			items, ok := u.popMark()
			if !ok {
				return nil, u.errf(op, "no mark")
			}
			t, _ := u.top()
			l, isList := t.(*pyList)
			if !isList {
				return nil, u.errf(op, "additems on a %T", t)
			}
			l.items = append(l.items, items...)
		case 0x91: // FROZENSET
			items, ok := u.popMark()
			if !ok {
				return nil, u.errf(op, "no mark")
			}
			push(&pyList{items: items})
		case 'c', 0x93: // GLOBAL, STACK_GLOBAL
			var module, name string
			if op == 'c' {
				var ok1, ok2 bool
				module, ok1 = u.line()
				name, ok2 = u.line()
				if !ok1 || !ok2 {
					return nil, u.errf(op, "unterminated name")
				}
			} else {
				n, ok1 := u.pop()
				m, ok2 := u.pop()
				ns, ok3 := n.(string)
				ms, ok4 := m.(string)
				if !ok1 || !ok2 || !ok3 || !ok4 {
					return nil, u.errf(op, "module and name must be strings")
				}
				module, name = ms, ns
			}
			if !isAllowedGlobal(module, name) {
				return nil, &GlobalError{Global: module + "." + name}
			}
			push(pyGlobal{module, name})
		case 'i': // INST: module, name inline; it calls the class
			module, _ := u.line()
			name, _ := u.line()
			return nil, &GlobalError{Global: module + "." + name}
		case 'R', 0x81, 0x92: // REDUCE, NEWOBJ, NEWOBJ_EX
			if op == 0x92 {
				if _, ok := u.pop(); !ok { // kwargs
					return nil, u.errf(op, "empty stack")
				}
			}
			args, ok1 := u.pop()
			fn, ok2 := u.pop()
			if !ok1 || !ok2 {
				return nil, u.errf(op, "empty stack")
			}
			g, isGlobal := fn.(pyGlobal)
			tup, isTuple := args.(pyTuple)
			if !isGlobal || !isTuple {
				return nil, u.errf(op, "call of %T with %T: only allowed globals with a tuple of arguments", fn, args)
			}
			v, err := applyGlobal(g, tup)
			if err != nil {
				return nil, u.errf(op, "%s: %v", g, err)
			}
			push(v)
		case 'b': // BUILD: state on a dict (OrderedDict's _metadata) or a tensor is dropped
			if _, ok := u.pop(); !ok {
				return nil, u.errf(op, "empty stack")
			}
			t, ok := u.top()
			switch t.(type) {
			case *pyDict, *pyTensor:
			default:
				if ok {
					return nil, u.errf(op, "build on a %T", t)
				}
				return nil, u.errf(op, "empty stack")
			}
		case 'Q': // BINPERSID
			pid, ok := u.pop()
			if !ok {
				return nil, u.errf(op, "empty stack")
			}
			if u.persist == nil {
				return nil, u.errf(op, "persistent ids are not expected here")
			}
			v, err := u.persist(pid)
			if err != nil {
				return nil, u.errf(op, "%v", err)
			}
			push(v)
		case 'q', 'r', 0x94, 'p': // BINPUT, LONG_BINPUT, MEMOIZE, PUT
			idx, err := u.memoIndex(op)
			if err != nil {
				return nil, err
			}
			if err := u.memoPut(idx, op); err != nil {
				return nil, err
			}
		case 'h', 'j', 'g': // BINGET, LONG_BINGET, GET
			idx, err := u.memoIndex(op)
			if err != nil {
				return nil, err
			}
			if err := u.memoGet(idx, op); err != nil {
				return nil, err
			}
		default:
			// EXT1/2/4 (the extension registry), OBJ, PERSID, text strings and
			// everything else a state dict does not use.
			return nil, u.errf(op, "opcode not used by PyTorch state dicts; refused")
		}
	}
}

func (d *pyDict) set(k, v any) {
	if ks, ok := k.(string); ok {
		if i, ok := d.index[ks]; ok {
			d.vals[i] = v
			return
		}
		if d.index == nil {
			d.index = map[string]int{}
		}
		d.index[ks] = len(d.keys)
	}
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

func (d *pyDict) get(k string) (any, bool) {
	if i, ok := d.index[k]; ok {
		return d.vals[i], true
	}
	return nil, false
}

// applyGlobal gives the value an allowed global returns for args, computed
// here from data alone.
func applyGlobal(g pyGlobal, args pyTuple) (any, error) {
	switch g.String() {
	case "collections.OrderedDict":
		d := &pyDict{}
		if len(args) == 0 {
			return d, nil
		}
		return nil, fmt.Errorf("only OrderedDict() with no arguments")
	case "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2":
		if len(args) < 4 {
			return nil, fmt.Errorf("%d arguments", len(args))
		}
		return rebuildTensor(args)
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		if len(args) < 1 {
			return nil, fmt.Errorf("no arguments")
		}
		t, ok := args[0].(*pyTensor)
		if !ok {
			return nil, fmt.Errorf("parameter of a %T", args[0])
		}
		return t, nil
	case "torch._tensor._rebuild_from_type_v2":
		if len(args) < 3 {
			return nil, fmt.Errorf("%d arguments", len(args))
		}
		fn, ok1 := args[0].(pyGlobal)
		inner, ok2 := args[2].(pyTuple)
		if !ok1 || !ok2 || !strings.HasPrefix(fn.String(), "torch._utils._rebuild_") {
			return nil, fmt.Errorf("rebuild with %T", args[0])
		}
		return applyGlobal(fn, inner)
	case "_codecs.encode":
		if len(args) < 1 {
			return nil, fmt.Errorf("no arguments")
		}
		s, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("encode of a %T", args[0])
		}
		out := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 255 {
				return nil, fmt.Errorf("non-latin-1 character")
			}
			out = append(out, byte(r))
		}
		return out, nil
	}
	return nil, fmt.Errorf("not callable")
}

func rebuildTensor(args pyTuple) (*pyTensor, error) {
	st, ok := args[0].(*pyStorage)
	if !ok {
		return nil, fmt.Errorf("storage argument is a %T", args[0])
	}
	off, ok := args[1].(int64)
	if !ok || off < 0 {
		return nil, fmt.Errorf("storage offset %v", args[1])
	}
	size, ok1 := args[2].(pyTuple)
	stride, ok2 := args[3].(pyTuple)
	if !ok1 || !ok2 || len(size) != len(stride) || len(size) > 16 {
		return nil, fmt.Errorf("size %v and stride %v", args[2], args[3])
	}
	t := &pyTensor{storage: st, offset: off}
	for i := range size {
		d, ok1 := size[i].(int64)
		s, ok2 := stride[i].(int64)
		if !ok1 || !ok2 || d < 0 || d > math.MaxInt32 || s < 0 {
			return nil, fmt.Errorf("size %v and stride %v", size, stride)
		}
		t.shape = append(t.shape, int(d))
		t.stride = append(t.stride, s)
	}
	if t.shape == nil {
		t.shape = []int{}
	}
	return t, nil
}

// contiguous reports whether t's strides are row-major for its shape.
func (t *pyTensor) contiguous() bool {
	want := int64(1)
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] != 1 && t.stride[i] != want {
			return false
		}
		want *= int64(t.shape[i])
	}
	return true
}

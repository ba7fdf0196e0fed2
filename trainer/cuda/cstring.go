package cuda

import "unsafe"

// cstr returns a NUL-terminated copy of s for passing to C.
func cstr(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

// gostring copies the NUL-terminated C string at p.
func gostring(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// ptr is the address of a Go value for passing to C by pointer.
//
// The value must not live on a goroutine stack: a stack can move (grow) between taking
// the address and the C call inside purego, and C would then write into the old stack.
// The never-taken store below makes every pointer passed here escape, so the compiler
// puts the values on the heap, which does not move.
func ptr[T any](v *T) uintptr {
	if escapeNever {
		escapeSink = v
	}
	return uintptr(unsafe.Pointer(v))
}

var (
	escapeNever bool
	escapeSink  any
)

// bytePtr turns an address returned by C (static storage outside the Go heap) into a
// pointer for gostring.
func bytePtr(p uintptr) *byte {
	return *(**byte)(unsafe.Pointer(&p))
}

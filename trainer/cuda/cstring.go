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

// bytePtr turns an address returned by C (static storage outside the Go heap) into a
// pointer for gostring.
func bytePtr(p uintptr) *byte {
	return *(**byte)(unsafe.Pointer(&p))
}

package cuda

import "os"

// Fast paths of Permute. The layout swaps of the SD executor (ToTokens,
// ToFrames: (N, C, P) <-> (N, P, C); ToTime, FromTime: (B, T, P, C) <->
// (B, P, T, C); a joint group norm's (B, T, C, P) <-> (B, C, T, P)) are
// all one swap of two adjacent blocks of axes; the general permute6
// kernel, an index gather with five divisions per element, ran them at
// about a quarter of the card's copy bandwidth (2.0-2.2 ms per pass of
// the full-size step's 16 layers each, H200). permute_swap.cu moves them
// as float4 runs or 32x32 shared-memory tiles.

// permuteFast turns the fast paths on (PIPELINE_PERMUTE_FAST=0: permute6
// for all, for comparisons).
var permuteFast = os.Getenv("PIPELINE_PERMUTE_FAST") != "0"

// swapForm reports whether permuting shape in by perm moves x viewed as
// (n, a, b, c) to (n, b, a, c): after unit axes are dropped and axes that
// stay neighbours in order are merged, perm is one of [0], [1 0],
// [0 2 1], [1 0 2], [0 2 1 3].
func swapForm(in, perm []int) (n, a, b, c int, ok bool) {
	// the output's axes as numbers of the input's non-unit axes
	num := make([]int, len(in))
	var dims []int
	for i, d := range in {
		num[i] = len(dims)
		if d != 1 {
			dims = append(dims, d)
		}
	}
	var out []int
	for _, p := range perm {
		if in[p] != 1 {
			out = append(out, num[p])
		}
	}
	// runs of output axes that are consecutive input axes
	type run struct{ first, size int }
	var runs []run
	for k, p := range out {
		if k > 0 && p == out[k-1]+1 {
			runs[len(runs)-1].size *= dims[p]
			continue
		}
		runs = append(runs, run{p, dims[p]})
	}
	// rank of each run in input order
	rank := make([]int, len(runs))
	for i, r := range runs {
		for _, q := range runs {
			if q.first < r.first {
				rank[i]++
			}
		}
	}
	size := func(i int) int { return runs[i].size }
	eq := func(want ...int) bool {
		if len(rank) != len(want) {
			return false
		}
		for i := range want {
			if rank[i] != want[i] {
				return false
			}
		}
		return true
	}
	switch {
	case len(runs) == 0:
		return 1, 1, 1, 1, true
	case eq(0):
		return 1, 1, 1, size(0), true
	case eq(1, 0): // output (b, a)
		return 1, size(1), size(0), 1, true
	case eq(0, 2, 1):
		return size(0), size(2), size(1), 1, true
	case eq(1, 0, 2):
		return 1, size(1), size(0), size(2), true
	case eq(0, 2, 1, 3):
		return size(0), size(2), size(1), size(3), true
	}
	return 0, 0, 0, 0, false
}

// permuteSwapLocked runs a swap form on a fast kernel; done is false when
// none applies (permute6 then). The context is current.
func (d *Device) permuteSwapLocked(y, x uintptr, in, perm []int) (done bool, err error) {
	n, a, b, c, ok := swapForm(in, perm)
	total := int64(n) * int64(a) * int64(b) * int64(c)
	if !permuteFast || !ok || total >= 1<<31 {
		return false, nil
	}
	switch {
	case c%4 == 0 && y%16 == 0 && x%16 == 0:
		n4 := int(total / 4)
		return true, d.elementwise("permute_swap4", n4, PtrArg(y), PtrArg(x), IntArg(n), IntArg(a), IntArg(b), IntArg(c/4))
	case c == 1 && a > 1 && b > 1:
		tiles := int64(n) * int64((a+31)/32) * int64((b+31)/32)
		return true, d.launch("permute_tile", int(min(tiles, int64(d.sms*16))), BlockSize, PtrArg(y), PtrArg(x), IntArg(n), IntArg(a), IntArg(b))
	}
	return false, nil
}

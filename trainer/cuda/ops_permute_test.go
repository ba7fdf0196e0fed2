package cuda

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// permuteRef is the source index of every output element of permuting
// shape in by perm.
func permuteRef(in, perm []int) []int {
	st := make([]int, len(in))
	acc := 1
	for i := len(in) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= in[i]
	}
	od := make([]int, len(in))
	for k, p := range perm {
		od[k] = in[p]
	}
	src := make([]int, acc)
	idx := make([]int, len(in))
	for o := range src {
		r := o
		for k := len(od) - 1; k >= 0; k-- {
			idx[k] = r % od[k]
			r /= od[k]
		}
		for k, p := range perm {
			src[o] += idx[k] * st[p]
		}
	}
	return src
}

// swapRef is the source index of every output element of the swap
// (n, a, b, c) -> (n, b, a, c).
func swapRef(n, a, b, c int) []int {
	var src []int
	for ni := 0; ni < n; ni++ {
		for bi := 0; bi < b; bi++ {
			for ai := 0; ai < a; ai++ {
				for ci := 0; ci < c; ci++ {
					src = append(src, ((ni*a+ai)*b+bi)*c+ci)
				}
			}
		}
	}
	return src
}

// TestSwapForm checks that every permutation swapForm accepts is the swap
// it names, that the executor's layout swaps are accepted, and that a
// permutation of three moving blocks is not.
func TestSwapForm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	accepted := 0
	for iter := 0; iter < 3000; iter++ {
		k := 1 + rng.IntN(5)
		in := make([]int, k)
		for i := range in {
			in[i] = 1 + rng.IntN(4)
		}
		perm := rng.Perm(k)
		n, a, b, c, ok := swapForm(in, perm)
		if !ok {
			continue
		}
		accepted++
		if got, want := swapRef(n, a, b, c), permuteRef(in, perm); !slices.Equal(got, want) {
			t.Fatalf("permute %v by %v: swap form (%d, %d, %d, %d) moves other elements", in, perm, n, a, b, c)
		}
	}
	if accepted < 300 {
		t.Fatalf("only %d of 3000 random permutations took a swap form", accepted)
	}
	for _, c := range []struct {
		in, perm []int
		want     [4]int
	}{
		{[]int{25, 320, 4096}, []int{0, 2, 1}, [4]int{25, 320, 4096, 1}},       // ToTokens
		{[]int{1, 25, 4096, 320}, []int{0, 2, 1, 3}, [4]int{1, 25, 4096, 320}}, // ToTime
		{[]int{1, 25, 320, 4096}, []int{0, 2, 1, 3}, [4]int{1, 25, 320, 4096}}, // joint group norm
		{[]int{2, 1, 3, 5}, []int{0, 2, 1, 3}, [4]int{1, 1, 1, 30}},            // a unit axis: a copy
	} {
		n, a, b, cc, ok := swapForm(c.in, c.perm)
		if got := [4]int{n, a, b, cc}; !ok || got != c.want {
			t.Errorf("swapForm(%v, %v) = %v %v, want %v", c.in, c.perm, got, ok, c.want)
		}
	}
	if _, _, _, _, ok := swapForm([]int{2, 3, 4}, []int{2, 1, 0}); ok {
		t.Error("swapForm took the reversal of three axes")
	}
}

package gpu

import (
	"runtime"
	"sync"
)

// parallelCopy copies src into dst (same length) on several goroutines:
// a single core copies about 5-10 GB/s, less than the bus the copy feeds.
func parallelCopy(dst, src []float32) {
	const chunk = 1 << 18
	n := len(src)
	if n <= 2*chunk {
		copy(dst, src)
		return
	}
	workers := min(runtime.GOMAXPROCS(0), (n+chunk-1)/chunk, 8)
	per := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		wg.Go(func() { copy(dst[lo:hi], src[lo:hi]) })
	}
	wg.Wait()
}

// parallelEach runs f(i) for i in [0, n) on up to 8 goroutines.
func parallelEach(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n, 8)
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

package nn

import "sync"

// A packed, cache-blocked SGEMM around a 6x16 register micro-kernel (AVX2 +
// FMA on amd64; elsewhere Sgemm falls back to gonum). Single-threaded:
// callers parallelise over frames or sequences.

const (
	mr = 6   // micro-kernel rows
	nr = 16  // micro-kernel columns
	kc = 256 // depth of a packed block
	mc = 96  // rows of a packed A block (multiple of mr)
	nc = 2048
)

type gemmBufs struct {
	a, b []float32
	c    [mr * nr]float32
}

var gemmPool = sync.Pool{New: func() any {
	return &gemmBufs{a: make([]float32, mc*kc), b: make([]float32, kc*nc)}
}}

// packA packs rows [i0, i0+mb) x depth [p0, p0+kb) of op(A) into mr-row
// panels, zero-padding the last panel.
func packA(dst []float32, transA bool, a []float32, lda, i0, mb, p0, kb int) {
	o := 0
	for ir := 0; ir < mb; ir += mr {
		rows := min(mr, mb-ir)
		d := dst[o : o+mr*kb]
		o += mr * kb
		switch {
		case transA && rows == mr:
			// op(A)[r][p] = a[p*lda+r]: a panel's mr values at one depth are adjacent
			for p := 0; p < kb; p++ {
				src := a[(p0+p)*lda+i0+ir:]
				src = src[:mr]
				dp := d[p*mr : p*mr+mr]
				dp[0], dp[1], dp[2], dp[3], dp[4], dp[5] = src[0], src[1], src[2], src[3], src[4], src[5]
			}
		case !transA && rows == mr:
			r := i0 + ir
			a0 := a[r*lda+p0:][:kb]
			a1 := a[(r+1)*lda+p0:][:kb]
			a2 := a[(r+2)*lda+p0:][:kb]
			a3 := a[(r+3)*lda+p0:][:kb]
			a4 := a[(r+4)*lda+p0:][:kb]
			a5 := a[(r+5)*lda+p0:][:kb]
			for p := 0; p < kb; p++ {
				dp := d[p*mr : p*mr+mr]
				dp[0], dp[1], dp[2], dp[3], dp[4], dp[5] = a0[p], a1[p], a2[p], a3[p], a4[p], a5[p]
			}
		default:
			for p := 0; p < kb; p++ {
				dp := d[p*mr : p*mr+mr]
				for i := range dp {
					var v float32
					if i < rows {
						r, c := i0+ir+i, p0+p
						if transA {
							v = a[c*lda+r]
						} else {
							v = a[r*lda+c]
						}
					}
					dp[i] = v
				}
			}
		}
	}
}

// packB packs depth [p0, p0+kb) x columns [j0, j0+nb) of op(B) into
// nr-column panels, zero-padding the last panel.
func packB(dst []float32, transB bool, b []float32, ldb, p0, kb, j0, nb int) {
	o := 0
	for jr := 0; jr < nb; jr += nr {
		cols := min(nr, nb-jr)
		for p := 0; p < kb; p++ {
			d := dst[o : o+nr]
			o += nr
			if !transB {
				row := b[(p0+p)*ldb+j0+jr:]
				copy(d[:cols], row[:cols])
			} else {
				for j := 0; j < cols; j++ {
					d[j] = b[(j0+jr+j)*ldb+p0+p]
				}
			}
			for j := cols; j < nr; j++ {
				d[j] = 0
			}
		}
	}
}

// sgemmFMA is Sgemm on the micro-kernel; k > 0.
func sgemmFMA(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	bufs := gemmPool.Get().(*gemmBufs)
	defer gemmPool.Put(bufs)
	for jc := 0; jc < n; jc += nc {
		nb := min(nc, n-jc)
		for pc := 0; pc < k; pc += kc {
			kb := min(kc, k-pc)
			packB(bufs.b, transB, b, ldb, pc, kb, jc, nb)
			// the first depth block applies beta, later ones accumulate
			bet := beta
			if pc > 0 {
				bet = 1
			}
			for ic := 0; ic < m; ic += mc {
				mb := min(mc, m-ic)
				packA(bufs.a, transA, a, lda, ic, mb, pc, kb)
				for jr := 0; jr < nb; jr += nr {
					cols := min(nr, nb-jr)
					bp := bufs.b[jr*kb:]
					for ir := 0; ir < mb; ir += mr {
						rows := min(mr, mb-ir)
						if rows == mr && cols == nr {
							sgemmKernel6x16C(kb, &bufs.a[ir*kb], &bp[0], &c[(ic+ir)*ldc+jc+jr], ldc, alpha, bet)
							continue
						}
						sgemmKernel6x16(kb, &bufs.a[ir*kb], &bp[0], &bufs.c[0])
						for i := 0; i < rows; i++ {
							crow := c[(ic+ir+i)*ldc+jc+jr:]
							crow = crow[:cols]
							acc := bufs.c[i*nr : i*nr+cols]
							switch bet {
							case 0:
								for j := range crow {
									crow[j] = alpha * acc[j]
								}
							case 1:
								for j := range crow {
									crow[j] += alpha * acc[j]
								}
							default:
								for j := range crow {
									crow[j] = bet*crow[j] + alpha*acc[j]
								}
							}
						}
					}
				}
			}
		}
	}
}

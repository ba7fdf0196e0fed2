package optim

import "golang.org/x/sys/cpu"

// haveVecAdamW selects the AVX2 element update (adamw_amd64.s): the same
// IEEE operations in the same order as hyper.adamw, eight at a time, so
// the same bits.
var haveVecAdamW = cpu.X86.HasAVX2

// adamwFromVec: p = g, w0, m0, v0 (read), w, m, v (written), st (written
// when not nil).
//
//go:noescape
func adamwFromVec(b *adamwBlock)

// adamwSpecVec: p = g (read), w, m, v (read, then written), sw, sm, sv
// (the old values written), st (written when not nil).
//
//go:noescape
func adamwSpecVec(b *adamwBlock)

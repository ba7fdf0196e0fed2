//go:build !amd64

package optim

var haveVecAdamW = false

func adamwFromVec(*adamwBlock) { panic("optim: no vector AdamW kernel") }
func adamwSpecVec(*adamwBlock) { panic("optim: no vector AdamW kernel") }

package gpu

import (
	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// Launch wrappers of kernels/sd.cu (the SD nets' element-wise and row
// kernels), on raw device addresses.

func (k *kernels) rowGrid(rows int64) int { return k.d.RowGrid(int(min(rows, 1<<30))) }

// layerNorm writes y and the row statistics (mean, rstd may be 0).
func (k *kernels) layerNorm(y, mean, rstd, x, gamma, beta uintptr, rows int64, d int, eps float32) error {
	if lnVec(rows, d, y, x, gamma, beta) {
		return k.layerNormVec(y, mean, rstd, x, gamma, beta, rows, d, eps)
	}
	return k.launch("sd_layer_norm", k.rowGrid(rows), cuda.PtrArg(y), cuda.PtrArg(mean), cuda.PtrArg(rstd), cuda.PtrArg(x),
		cuda.PtrArg(gamma), cuda.PtrArg(beta), cuda.Int64Arg(rows), cuda.IntArg(d), cuda.F32Arg(eps))
}

func (k *kernels) layerNormBackwardData(dx, dy, x, gamma, mean, rstd uintptr, rows int64, d int) error {
	if lnVec(rows, d, dx, dy, x, gamma) {
		return k.layerNormBackwardDataVec(dx, dy, x, gamma, mean, rstd, rows, d)
	}
	return k.launch("sd_layer_norm_bwd_dx", k.rowGrid(rows), cuda.PtrArg(dx), cuda.PtrArg(dy), cuda.PtrArg(x), cuda.PtrArg(gamma),
		cuda.PtrArg(mean), cuda.PtrArg(rstd), cuda.Int64Arg(rows), cuda.IntArg(d))
}

// lnChunks is how the parameter-gradient reduction splits rows.
func lnChunks(rows int64) (chunks int, chunk int64) {
	chunks = int(min(256, max(1, rows/64)))
	chunk = (rows + int64(chunks) - 1) / int64(chunks)
	return chunks, chunk
}

// layerNormBackwardParams writes dgamma and dbeta (either may be 0) using
// part, scratch of 2*chunks*d floats (lnChunks).
func (k *kernels) layerNormBackwardParams(dgamma, dbeta, part, dy, x, mean, rstd uintptr, rows int64, d int) error {
	chunks, chunk := lnChunks(rows)
	cblocks := (d + 31) / 32
	if err := k.launch("sd_layer_norm_bwd_part", cblocks*chunks, cuda.PtrArg(part), cuda.PtrArg(dy), cuda.PtrArg(x), cuda.PtrArg(mean),
		cuda.PtrArg(rstd), cuda.Int64Arg(rows), cuda.IntArg(d), cuda.IntArg(cblocks), cuda.Int64Arg(chunk)); err != nil {
		return err
	}
	return k.launch("sd_layer_norm_bwd_finish", k.gridFor(int64(d)), cuda.PtrArg(dgamma), cuda.PtrArg(dbeta), cuda.PtrArg(part),
		cuda.IntArg(chunks), cuda.IntArg(d))
}

func (k *kernels) geglu(y, x uintptr, m int64, f int) error {
	if gegluVec(m, f, y, x) {
		return k.gegluVec(y, x, m, f)
	}
	return k.launch("sd_geglu", k.gridFor(m*int64(f)), cuda.PtrArg(y), cuda.PtrArg(x), cuda.Int64Arg(m), cuda.IntArg(f))
}

func (k *kernels) gegluBackward(dx, dy, x uintptr, m int64, f int) error {
	if gegluVec(m, f, dx, dy, x) {
		return k.gegluBackwardVec(dx, dy, x, m, f)
	}
	return k.launch("sd_geglu_bwd", k.gridFor(m*int64(f)), cuda.PtrArg(dx), cuda.PtrArg(dy), cuda.PtrArg(x), cuda.Int64Arg(m), cuda.IntArg(f))
}

// Activation kinds of sd_act.
const (
	actGELU      = 0
	actQuickGELU = 1
)

func (k *kernels) act(y, x uintptr, n int64, kind int) error {
	return k.launch("sd_act", k.gridFor(n), cuda.PtrArg(y), cuda.PtrArg(x), cuda.Int64Arg(n), cuda.IntArg(kind))
}

func (k *kernels) actBackward(dx, dy, x uintptr, n int64, kind int) error {
	return k.launch("sd_act_bwd", k.gridFor(n), cuda.PtrArg(dx), cuda.PtrArg(dy), cuda.PtrArg(x), cuda.Int64Arg(n), cuda.IntArg(kind))
}

func (k *kernels) tokenEmbed(y, ids, token, position uintptr, n int64, l, d int) error {
	return k.launch("sd_token_embed", k.gridFor(n*int64(l*d)), cuda.PtrArg(y), cuda.PtrArg(ids), cuda.PtrArg(token), cuda.PtrArg(position),
		cuda.Int64Arg(n), cuda.IntArg(l), cuda.IntArg(d))
}

func (k *kernels) padEnd(y, x uintptr, planes int64, h, w int) error {
	return k.launch("sd_pad_end", k.gridFor(planes*int64((h+1)*(w+1))), cuda.PtrArg(y), cuda.PtrArg(x), cuda.Int64Arg(planes), cuda.IntArg(h), cuda.IntArg(w))
}

func (k *kernels) cropEnd(dx, dy uintptr, planes int64, h, w int) error {
	return k.launch("sd_crop_end", k.gridFor(planes*int64(h*w)), cuda.PtrArg(dx), cuda.PtrArg(dy), cuda.Int64Arg(planes), cuda.IntArg(h), cuda.IntArg(w))
}

// softmaxMasked: p = softmax(s) over rows of lk, the causal mask by query
// row r % lq.
func (k *kernels) softmaxMasked(p, s uintptr, rows int64, lq, lk int, causal bool) error {
	c := 0
	if causal {
		c = 1
	}
	return k.launch("sd_softmax_masked", k.gridFor(rows*32), cuda.PtrArg(p), cuda.PtrArg(s), cuda.Int64Arg(rows), cuda.IntArg(lq), cuda.IntArg(lk), cuda.IntArg(c))
}

func (k *kernels) accumulate(y, x uintptr, n int64) error {
	if n%4 == 0 && y%16 == 0 && x%16 == 0 {
		return k.launch("sd_accumulate4", k.gridFor(n/4), cuda.PtrArg(y), cuda.PtrArg(x), cuda.Int64Arg(n/4))
	}
	return k.launch("sd_accumulate", k.gridFor(n), cuda.PtrArg(y), cuda.PtrArg(x), cuda.Int64Arg(n))
}

func (k *kernels) copy(y, x uintptr, n int64) error {
	return k.launch("sd_copy", k.gridFor(n), cuda.PtrArg(y), cuda.PtrArg(x), cuda.Int64Arg(n))
}

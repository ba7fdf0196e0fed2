package gpu

import (
	"os"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// Dispatch to kernels/sd_vec.cu, the float4 forms of the layer norm (one
// warp per row, the row in registers) and GEGLU: the shapes of SD's
// transformers (widths 320..1280, multiples of 4) on 16-byte aligned
// buffers. The scalar kernels of sd.cu keep the rest.
// PIPELINE_SD_VEC=0 turns them off (for comparisons).
var sdVec = os.Getenv("PIPELINE_SD_VEC") != "0"

// sdvLNMax is the widest row the warp layer norm holds (SDV_LN_MAX float4s
// per lane).
const sdvLNMax = 4 * 32 * 10

func aligned16(ps ...uintptr) bool {
	for _, p := range ps {
		if p%16 != 0 {
			return false
		}
	}
	return true
}

// lnVec reports whether the warp layer norm takes rows of d on buffers ps.
func lnVec(rows int64, d int, ps ...uintptr) bool {
	return sdVec && d%4 == 0 && d <= sdvLNMax && rows < 1<<31 && aligned16(ps...)
}

// gegluVec reports whether the float4 GEGLU takes m rows of f outputs.
func gegluVec(m int64, f int, ps ...uintptr) bool {
	return sdVec && f%4 == 0 && 2*m*int64(f) < 1<<31 && aligned16(ps...)
}

func (k *kernels) layerNormVec(y, mean, rstd, x, gamma, beta uintptr, rows int64, d int, eps float32) error {
	return k.launch("sd_layer_norm_w", k.gridFor(rows*32), cuda.PtrArg(y), cuda.PtrArg(mean), cuda.PtrArg(rstd), cuda.PtrArg(x),
		cuda.PtrArg(gamma), cuda.PtrArg(beta), cuda.IntArg(int(rows)), cuda.IntArg(d), cuda.F32Arg(eps))
}

func (k *kernels) layerNormBackwardDataVec(dx, dy, x, gamma, mean, rstd uintptr, rows int64, d int) error {
	return k.launch("sd_layer_norm_bwd_dx_w", k.gridFor(rows*32), cuda.PtrArg(dx), cuda.PtrArg(dy), cuda.PtrArg(x), cuda.PtrArg(gamma),
		cuda.PtrArg(mean), cuda.PtrArg(rstd), cuda.IntArg(int(rows)), cuda.IntArg(d))
}

func (k *kernels) gegluVec(y, x uintptr, m int64, f int) error {
	return k.launch("sd_geglu4", k.gridFor(m*int64(f/4)), cuda.PtrArg(y), cuda.PtrArg(x), cuda.IntArg(int(m)), cuda.IntArg(f/4))
}

func (k *kernels) gegluBackwardVec(dx, dy, x uintptr, m int64, f int) error {
	return k.launch("sd_geglu_bwd4", k.gridFor(m*int64(f/4)), cuda.PtrArg(dx), cuda.PtrArg(dy), cuda.PtrArg(x), cuda.IntArg(int(m)), cuda.IntArg(f/4))
}

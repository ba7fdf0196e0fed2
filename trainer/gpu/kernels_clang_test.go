package gpu

import (
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda/cudatest"
)

// TestKernelsParse syntax-checks the package's kernels as trainer/cuda
// compiles them (its shared header first).
func TestKernelsParse(t *testing.T) {
	src, err := kernelModule().Source()
	if err != nil {
		t.Fatal(err)
	}
	cudatest.CheckSyntax(t, "gpu", src)
}

// TestFlashKernelsParse syntax-checks the fused attention modules of both
// operand types at the narrowest and widest padded head dims, and the
// wide kernels' (flash_wide.cu) head dims: 40 of 48 (a last k8 step, an odd
// n8 tile), 64 and 24 of 32.
func TestFlashKernelsParse(t *testing.T) {
	for _, key := range []flashKey{{bf16: true, dp: flashDims[0], d8: 8}, {bf16: false, dp: flashDims[len(flashDims)-1], d8: 160},
		{bf16: true, dp: 80, d8: 80}, {bf16: true, dp: 48, d8: 40}, {bf16: false, dp: 48, d8: 40}, {bf16: true, dp: 64, d8: 64},
		{bf16: false, dp: 32, d8: 24}} {
		ms, err := flashSource(key)
		if err != nil {
			t.Fatal(err)
		}
		src, err := ms.Source()
		if err != nil {
			t.Fatal(err)
		}
		cudatest.CheckSyntax(t, ms.Name, src)
	}
}

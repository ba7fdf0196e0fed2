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
// operand types at the narrowest and widest padded head dims, of
// kernels/flash.cu and kernels/flash_next.cu.
func TestFlashKernelsParse(t *testing.T) {
	defer func(v bool) { flashNext = v }(flashNext)
	for i, key := range []flashKey{{bf16: true, dp: flashDims[0]}, {bf16: false, dp: flashDims[len(flashDims)-1]}, {bf16: true, dp: 80},
		{bf16: true, dp: 48}, {bf16: false, dp: 160}, {bf16: true, dp: 16}} {
		flashNext = i >= 3 // kernels/flash_next.cu
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

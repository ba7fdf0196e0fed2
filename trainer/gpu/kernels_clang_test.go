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
// operand types at the narrowest and widest padded head dims.
func TestFlashKernelsParse(t *testing.T) {
	for _, key := range []flashKey{{bf16: true, dp: flashDims[0]}, {bf16: false, dp: flashDims[len(flashDims)-1]}, {bf16: true, dp: 80}} {
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

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

package cuda

import (
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda/cudatest"
)

// TestKernelsParse syntax-checks the package's kernels as NVRTC compiles
// them, so a typo fails here rather than on the GPU machine.
func TestKernelsParse(t *testing.T) {
	src, err := builtinModule().Source()
	if err != nil {
		t.Fatal(err)
	}
	cudatest.CheckSyntax(t, "cuda", src)
}
